import { createHash } from 'node:crypto';
import { ConfigError, digest, InvalidKeyError } from '@tarnjs/tarn';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { assertHexKey, digestFromPython, normalizeKey } from '../../src-lib/dist/digest.js';
import { nastyChar, nastyString, params, thrown, timed } from '../helpers/fuzz.js';

const HEX = '0123456789abcdef';
const hexChar = fc.constantFrom(...HEX);
const anyCaseHexChar = fc.constantFrom(...HEX, ...HEX.toUpperCase());
const hex = (min: number, max: number) => fc.string({ unit: hexChar, minLength: min, maxLength: max });

/** Digests of several key lengths (32, 40, 64 and 128 hex characters). */
const digestName = fc.constantFrom('sha256', 'sha512', 'md5', 'sha1', 'sha3-256', 'blake2b512');

/**
 * Strings around the shape of a key: exact-length keys in mixed case, one character off (a
 * traversal, a slash, NUL, unicode that lower-cases to ASCII), too short, too long, odd lengths,
 * padded, and arbitrary untrusted text.
 */
function keyish(length: number): fc.Arbitrary<string> {
  const exact = fc.string({ unit: anyCaseHexChar, minLength: length, maxLength: length });
  return fc.oneof(
    exact,
    fc.tuple(exact, fc.nat(length - 1), nastyChar).map(([k, at, c]) => k.slice(0, at) + c + k.slice(at + 1)),
    fc
      .tuple(
        exact,
        fc.constantFrom('', '../', '/', '\0', ' ', '\n', './'),
        fc.constantFrom('', '/', '\0', ' ', '00'),
      )
      .map(([k, before, after]) => before + k + after),
    fc.string({ unit: anyCaseHexChar, maxLength: length * 2 + 3 }),
    exact.map((k) => k.slice(0, -1)),
    nastyString(length + 8),
  );
}

describe('keys from untrusted input (property-based)', () => {
  it('normalizeKey accepts exactly the hex strings of the digest length, in any case, and lower-cases them', () => {
    fc.assert(
      fc.property(
        digestName.chain((name) => fc.tuple(fc.constant(name), keyish(digest(name).hexLength))),
        ([name, input]) => {
          const d = digest(name);
          const valid = new RegExp(`^[0-9a-fA-F]{${d.hexLength}}$`).test(input);
          const error = thrown(() => normalizeKey(input, d));
          if (valid) {
            expect(error).toBeUndefined();
            expect(normalizeKey(input, d)).toBe(input.toLowerCase());
          } else {
            expect(error).toBeInstanceOf(InvalidKeyError);
          }
        },
      ),
      params(500),
    );
  });

  const notAString = (options: Parameters<typeof fc.anything>[0]) =>
    fc
      .anything({
        withBigInt: true,
        withMap: true,
        withSet: true,
        withBoxedValues: true,
        withDate: true,
        withTypedArray: true,
        ...options,
      })
      .filter((v) => typeof v !== 'string');

  it('normalizeKey and assertHexKey refuse values that are not strings with InvalidKeyError', () => {
    fc.assert(
      fc.property(
        // Objects whose own toString/valueOf are no functions are the next property's.
        notAString({ key: fc.string().filter((k) => k !== 'toString' && k !== 'valueOf') }),
        (value) => {
          expect(thrown(() => normalizeKey(value, digest('sha256')))).toBeInstanceOf(InvalidKeyError);
          expect(thrown(() => assertHexKey(value))).toBeInstanceOf(InvalidKeyError);
        },
      ),
      params(200),
    );
  });

  // Was a bug (errors.ts, InvalidKeyError's constructor): it quoted the key with String(key), which
  // throws "TypeError: Cannot convert object to primitive value" for a JSON object with a
  // "toString" member that is no function ({"toString": 0}, as a client can send) and for objects
  // without a prototype. Minimal counterexamples: {"toString": 0}, Object.create(null).
  it('…also objects that cannot be converted to a string (JSON {"toString": 0}, no prototype)', () => {
    fc.assert(
      fc.property(
        notAString({ key: fc.constantFrom('toString', 'valueOf', 'a'), withNullPrototype: true }),
        (value) => {
          expect(thrown(() => normalizeKey(value, digest('sha256')))).toBeInstanceOf(InvalidKeyError);
          expect(thrown(() => assertHexKey(value))).toBeInstanceOf(InvalidKeyError);
        },
      ),
      params(200, { examples: [[JSON.parse('{"toString": 0}')], [Object.create(null)]] }),
    );
  });

  it('assertHexKey accepts exactly the non-empty, even-length, lower-case hex strings', () => {
    fc.assert(
      fc.property(fc.oneof(hex(0, 130), keyish(64), keyish(7)), (input) => {
        const error = thrown(() => assertHexKey(input));
        if (/^(?:[0-9a-f]{2})+$/.test(input)) expect(error).toBeUndefined();
        else expect(error).toBeInstanceOf(InvalidKeyError);
      }),
      params(500),
    );
  });

  it('a huge key is refused at once, with a message of bounded size', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 100_000, max: 1_000_000 }),
        fc.constantFrom('a', 'A', '/', '0', '\uD800'),
        (size, c) => {
          const key = c.repeat(size);
          const { ms, error } = timed(() => normalizeKey(key, digest('sha256')));
          expect(error).toBeInstanceOf(InvalidKeyError);
          expect(ms).toBeLessThan(1_000);
          // The key is quoted from its first 200 characters, JSON-escaped (6 characters at most each).
          expect((error as Error).message.length).toBeLessThan(2000);
        },
      ),
      params(20),
    );
  });
});

describe('digest names from untrusted input (property-based)', () => {
  const hashNames = fc.oneof(
    fc.constantFrom(
      'sha256',
      'SHA256',
      'sha512',
      'md5',
      'sha3-256',
      'blake2b512',
      'shake128',
      'shake256',
      'RSA-SHA256',
    ),
    fc.constantFrom('constructor', '__proto__', 'toString', 'hasOwnProperty', 'valueOf', 'prototype', ''),
    nastyString(20),
  );

  it('digest(name) gives a ConfigError or a digest that hashes as node:crypto does', () => {
    fc.assert(
      fc.property(hashNames, fc.uint8Array({ maxLength: 64 }), (name, data) => {
        let d: ReturnType<typeof digest>;
        try {
          d = digest(name);
        } catch (e) {
          expect(e).toBeInstanceOf(ConfigError);
          return;
        }
        const expected = createHash(d.name).update(data).digest('hex');
        expect(d.of(data)).toBe(expected);
        expect(d.create().update(data).digest('hex')).toBe(expected);
        expect(expected).toHaveLength(d.hexLength);
      }),
      params(300),
    );
  });

  // A lake's config.yml names its digest (`hash:`) as Python's hashlib does; the name and its
  // keyword arguments come from whoever wrote the lake.
  it('digestFromPython(name, kwargs) gives a ConfigError or a fixed-length digest', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.constantFrom('sha256', 'sha512', 'blake2b', 'blake2s', 'sha3_256', 'md5', 'shake_128'),
          fc.constantFrom('constructor', '__proto__', 'toString', 'hasOwnProperty', 'valueOf'),
          nastyString(20),
        ),
        fc.dictionary(
          fc.oneof(fc.constantFrom('digest_size', 'key', 'salt', '__proto__', 'constructor'), fc.string()),
          fc.oneof(fc.integer({ min: -1, max: 128 }), fc.string(), fc.constant(null)),
          { maxKeys: 3 },
        ),
        (name, kwargs) => {
          let d: ReturnType<typeof digest>;
          try {
            d = digestFromPython(name, kwargs);
          } catch (e) {
            expect(e).toBeInstanceOf(ConfigError);
            return;
          }
          expect(d.hexLength).toBe(d.of(new Uint8Array()).length);
          expect(d.hexLength).toBeGreaterThan(0);
        },
      ),
      params(300, {
        // Found by this property: names inherited from Object.prototype were taken for hashlib names.
        examples: [
          ['constructor', {}],
          ['__proto__', {}],
          ['toString', {}],
        ],
      }),
    );
  });
});
