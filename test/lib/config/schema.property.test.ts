import { ConfigError, parseConfig, type StorageConfig } from '@tarnjs/tarn';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { at, locationNode, mutateAt, storageConfig } from '../../helpers/config-trees.js';
import { nastyString, params, timed } from '../../helpers/fuzz.js';

/**
 * What parsing untrusted input may do: return a config or throw a ConfigError whose path names
 * where the problem is. Anything else (a TypeError, a RangeError from the stack) is a bug.
 */
function outcome(raw: unknown): { config: StorageConfig } | { error: ConfigError } {
  try {
    return { config: parseConfig(raw) };
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    const error = e as ConfigError;
    expect(Array.isArray(error.path)).toBe(true);
    for (const p of error.path) expect(['string', 'number']).toContain(typeof p);
    return { error };
  }
}

/** The path of a ConfigError leads into the input: every step but the last exists (the last may be a missing field). */
function expectPathInto(raw: unknown, error: ConfigError): void {
  const parent = at(raw, error.path.slice(0, -1));
  if (error.path.length > 0) {
    expect(parent, `${error.path.join('.')} leads nowhere in the input`).toBeTypeOf('object');
    expect(parent).not.toBeNull();
  }
}

/** Wraps `inner` in `depth` levels of one kind of nesting. */
function nest(
  kind: 'list' | 'fanout' | 'levels' | 'level' | 'small' | 'field',
  depth: number,
  inner: unknown = 'lake',
) {
  let node = inner;
  for (let i = 0; i < depth; i++) {
    switch (kind) {
      case 'list':
        node = [node];
        break;
      case 'fanout':
        node = { kind: 'fanout', members: [node] };
        break;
      case 'levels':
        node = { kind: 'levels', levels: [node] };
        break;
      case 'level':
        node = { kind: 'levels', levels: [{ location: node }] };
        break;
      case 'small':
        node = { kind: 'small', maxSize: 1, location: node };
        break;
      case 'field':
        node = { kind: 'disk', root: 'x', levels: node };
        break;
    }
  }
  return node;
}

const json = fc.jsonValue({ maxDepth: 6 });

describe('config schema given untrusted input (property-based)', () => {
  it('any JSON value is a config or a ConfigError with a path into it', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          json,
          json.map((location) => ({ location })),
          fc.record({ location: json, locations: fc.dictionary(fc.string(), json) }),
          fc.anything({
            withMap: true,
            withSet: true,
            withBigInt: true,
            withNullPrototype: true,
            withDate: true,
          }),
        ),
        (raw) => {
          const result = outcome(raw);
          if ('error' in result) expectPathInto(raw, result.error);
        },
      ),
      params(300),
    );
  });

  it('every generated valid tree parses to itself', () => {
    fc.assert(
      fc.property(storageConfig(), (raw) => {
        const result = outcome(raw);
        expect(result).toHaveProperty('config');
        expect((result as { config: StorageConfig }).config).toEqual(raw);
      }),
      params(300),
    );
  });

  it('a valid tree with one field added, removed or replaced is a config or a ConfigError with a path into it', () => {
    const replacement = fc.oneof(
      json,
      nastyString(20),
      fc.constantFrom('kind', 'ref', 'location', '__proto__', 'constructor', -1, 1.5, 2 ** 53, null, [], {}),
    );
    fc.assert(
      fc.property(
        storageConfig(),
        fc.nat(),
        fc.oneof(
          replacement.map((r) => ({ op: 'replace' as const, r })),
          fc.record({
            op: fc.constant('add' as const),
            key: fc.oneof(nastyString(10), fc.constantFrom('kind', '__proto__', 'constructor', 'toString')),
            r: replacement,
          }),
          fc.constant({ op: 'remove' as const }),
        ),
        (valid, pick, change) => {
          const { mutated } = mutateAt(valid, pick, (old, key) => {
            if (change.op === 'replace') return change.r;
            if (change.op === 'add' && old !== null && typeof old === 'object' && !Array.isArray(old))
              return Object.defineProperty({ ...old }, change.key, {
                value: change.r,
                enumerable: true,
                configurable: true,
                writable: true,
              });
            if (change.op === 'remove' && old !== null && typeof old === 'object') {
              const copy = Array.isArray(old) ? [...old] : { ...old };
              if (Array.isArray(copy)) copy.pop();
              else delete (copy as Record<string, unknown>)[Object.keys(copy)[0] as string];
              return copy;
            }
            return key === undefined ? old : change.op === 'remove' ? undefined : old;
          });
          const result = outcome(mutated);
          if ('error' in result) expectPathInto(mutated, result.error);
        },
      ),
      params(400),
    );
  });

  it('keys like __proto__ and constructor anywhere never change Object.prototype and give a config or a ConfigError', () => {
    const protoKey = fc.constantFrom<string>(
      '__proto__',
      'constructor',
      'prototype',
      'toString',
      'hasOwnProperty',
    );
    fc.assert(
      fc.property(storageConfig(), fc.nat(), protoKey, json, (valid, pick, key, value) => {
        // As JSON.parse makes them: own properties named __proto__, not prototypes.
        const { mutated } = mutateAt(valid, pick, (old) =>
          old !== null && typeof old === 'object' && !Array.isArray(old)
            ? JSON.parse(
                `{${[[key, value], ...Object.entries(old)].map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`).join(',')}}`,
              )
            : old,
        );
        const text = JSON.stringify(mutated);
        const result = outcome(JSON.parse(text));
        expect(Object.prototype).not.toHaveProperty('kind');
        expect(Object.prototype).not.toHaveProperty('location');
        expect(({} as Record<string, unknown>).polluted).toBeUndefined();
        if ('config' in result) {
          // Whatever was accepted has plain objects only, with no prototype taken from the input.
          const protos = new Set<unknown>();
          const walk = (v: unknown) => {
            if (v === null || typeof v !== 'object') return;
            protos.add(Object.getPrototypeOf(v));
            for (const x of Object.values(v)) walk(x);
          };
          walk(result.config);
          for (const p of protos) expect([Object.prototype, Array.prototype]).toContain(p);
        }
      }),
      params(200, {
        examples: [[{ location: 'a' }, 0, '__proto__', { polluted: true }]],
      }),
    );
  });

  it('nesting thousands of levels deep is refused with a ConfigError, in bounded time', () => {
    fc.assert(
      fc.property(
        fc.constantFrom('list', 'fanout', 'levels', 'level', 'small', 'field' as const),
        fc.integer({ min: 1_000, max: 20_000 }),
        fc.constantFrom('location', 'locations', 'memo'),
        (kind, depth, where) => {
          const node = nest(kind, depth);
          const raw =
            where === 'location'
              ? { location: node }
              : where === 'locations'
                ? { location: { ref: 'deep' }, locations: { deep: node } }
                : { location: 'lake', memo: { index: node } };
          const { ms, error } = timed(() => parseConfig(raw));
          expect(error).toBeInstanceOf(ConfigError);
          expect(ms).toBeLessThan(2_000);
        },
      ),
      params(30, { examples: [['list', 5_000, 'location']] }),
    );
  });

  it('a value that contains itself (YAML aliases, object graphs) is refused with a ConfigError', () => {
    fc.assert(
      fc.property(
        locationNode({ refs: false }),
        fc.constantFrom('list', 'fanout', 'levels', 'small'),
        (inner, kind) => {
          // A combinator whose child is (eventually) itself.
          const outer = nest(kind as 'list', 1, inner) as unknown[] | Record<string, unknown>;
          const slot = Array.isArray(outer)
            ? outer
            : ((outer.members ?? outer.levels) as unknown[] | undefined);
          if (slot) slot.push(outer);
          else (outer as Record<string, unknown>).location = outer;
          expect(outcome({ location: outer })).toHaveProperty('error');
        },
      ),
      params(100, {
        examples: [[['lake'], 'list']],
      }),
    );
  });

  it('YAML with aliases that make a cycle is refused with a ConfigError', () => {
    for (const text of [
      'location: &x [*x]\n',
      'location: &x {kind: fanout, members: [a, *x]}\n',
      'location: a\nlocations: {n: &y {kind: small, maxSize: 1, location: *y}}\n',
    ]) {
      expect(outcome(parse(text))).toHaveProperty('error');
    }
  });

  it('huge arrays are checked in bounded time', () => {
    fc.assert(
      fc.property(fc.integer({ min: 10_000, max: 100_000 }), fc.boolean(), (n, bad) => {
        const members: unknown[] = Array.from({ length: n }, (_, i) => `lake-${i}`);
        if (bad) members[n - 1] = 42;
        const { ms, error } = timed(() => parseConfig({ location: { kind: 'fanout', members } }));
        if (bad) {
          expect(error).toBeInstanceOf(ConfigError);
          expect((error as ConfigError).path).toEqual(['location', 'members', n - 1]);
        } else expect(error).toBeUndefined();
        expect(ms).toBeLessThan(5_000);
      }),
      params(8),
    );
  });

  it('a size is parsed in bounded time, and an accepted size is a safe integer', () => {
    const runs = fc.array(
      fc.tuple(
        fc.constantFrom('1', '9', ' ', '\t', 'K', 'i', 'B', '.', '!', 'x', '-'),
        fc.integer({ min: 1, max: 30_000 }),
      ),
      { minLength: 1, maxLength: 5 },
    );
    fc.assert(
      fc.property(
        fc.oneof(
          runs.map((r) => r.map(([c, n]) => c.repeat(n)).join('')),
          nastyString(30),
        ),
        (value) => {
          const {
            ms,
            error,
            value: config,
          } = timed(() => parseConfig({ location: { kind: 'small', maxSize: value, location: 'lake' } }));
          expect(ms).toBeLessThan(500);
          if (error) expect(error).toBeInstanceOf(ConfigError);
          else {
            const { parseSize } = sizes;
            expect(
              Number.isSafeInteger(
                parseSize(((config as StorageConfig).location as { maxSize: string }).maxSize),
              ),
            ).toBe(true);
          }
        },
      ),
      params(100, {
        examples: [
          // Quadratic backtracking in the size pattern: 2.6 s for these 30 kB before the fix.
          [`1${' '.repeat(30_000)}!`],
          // A size that overflows to Infinity.
          [`${'9'.repeat(400)}P`],
        ],
      }),
    );
  });
});

const sizes = await import('../../../src-lib/dist/util/size.js');
