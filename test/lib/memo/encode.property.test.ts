import { createHash } from 'node:crypto';
import { CacheKeyError, cacheKey, encodeCacheKey } from '@tarnjs/tarn';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encodeInto } from '../../../src-lib/dist/memo/encode.js';
import { prng } from '../../helpers/data.js';
import { nastyChar, params, thrown } from '../../helpers/fuzz.js';

const encode = (v: unknown) => encodeCacheKey(v);

// ---------------------------------------------------------------------------------------------
// The domain: what arguments of a memoised function can be. Plain data, Maps, Sets, dates,
// typed arrays, bigints, sparse arrays, objects without a prototype, well-formed unicode strings.

const anything = fc.anything({
  withBigInt: true,
  withDate: true,
  withMap: true,
  withSet: true,
  withTypedArray: true,
  withSparseArray: true,
  withNullPrototype: true,
  stringUnit: 'grapheme',
  maxDepth: 4,
  maxKeys: 5,
});

const isPlain = (v: object) => {
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
};

const bytesOf = (v: ArrayBufferView) => Buffer.from(v.buffer, v.byteOffset, v.byteLength);

/**
 * Structural equality as the encoding means it, written independently of it: numbers by
 * Object.is (NaN equals NaN, -0 differs from 0), holes differ from undefined, Map entries and Set
 * members as multisets, objects by their own keys whatever their order (with or without a prototype),
 * typed arrays by type and bytes.
 */
function same(a: unknown, b: unknown): boolean {
  if (typeof a !== typeof b) return false;
  if (a === null || b === null || typeof a !== 'object') return Object.is(a, b);
  const x = a as object;
  const y = b as object;
  if (Array.isArray(x) || Array.isArray(y)) {
    if (!Array.isArray(x) || !Array.isArray(y) || x.length !== y.length) return false;
    for (let i = 0; i < x.length; i++) {
      if (i in x !== i in y) return false;
      if (i in x && !same(x[i], y[i])) return false;
    }
    return true;
  }
  if (ArrayBuffer.isView(x) || ArrayBuffer.isView(y)) {
    return (
      ArrayBuffer.isView(x) &&
      ArrayBuffer.isView(y) &&
      x.constructor === y.constructor &&
      bytesOf(x).equals(bytesOf(y))
    );
  }
  if (x instanceof Date || y instanceof Date)
    return x instanceof Date && y instanceof Date && Object.is(x.getTime(), y.getTime());
  if (x instanceof Map || y instanceof Map) {
    if (!(x instanceof Map) || !(y instanceof Map) || x.size !== y.size) return false;
    return multisetEqual([...x], [...y], (p, q) => same(p[0], q[0]) && same(p[1], q[1]));
  }
  if (x instanceof Set || y instanceof Set) {
    if (!(x instanceof Set) || !(y instanceof Set) || x.size !== y.size) return false;
    return multisetEqual([...x], [...y], same);
  }
  if (!isPlain(x) || !isPlain(y)) throw new Error('outside the domain');
  const kx = Object.keys(x).sort();
  const ky = Object.keys(y).sort();
  if (kx.length !== ky.length || kx.some((k, i) => k !== ky[i])) return false;
  return kx.every((k) => same((x as Record<string, unknown>)[k], (y as Record<string, unknown>)[k]));
}

/** Greedy matching is exact for an equivalence relation. */
function multisetEqual<T>(xs: T[], ys: T[], eq: (a: T, b: T) => boolean): boolean {
  const left = [...ys];
  for (const x of xs) {
    const i = left.findIndex((y) => eq(x, y));
    if (i < 0) return false;
    left.splice(i, 1);
  }
  return left.length === 0;
}

function shuffled<T>(xs: T[], random: () => number): T[] {
  const out = [...xs];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

/**
 * A deep copy in which object keys, Map entries and Set members are inserted in a shuffled order
 * (arrays keep theirs). `dedupe` drops Map entries whose key equals an earlier key structurally.
 */
function permuted(v: unknown, random: () => number, dedupe = false): unknown {
  if (v === null || typeof v !== 'object') return v;
  if (Array.isArray(v)) {
    const out = new Array(v.length);
    for (let i = 0; i < v.length; i++) if (i in v) out[i] = permuted(v[i], random, dedupe);
    return out;
  }
  if (ArrayBuffer.isView(v)) return (v as unknown as { slice(): unknown }).slice();
  if (v instanceof Date) return new Date(v.getTime());
  if (v instanceof Map) {
    let entries = [...v];
    if (dedupe) entries = entries.filter(([k], i) => !entries.slice(0, i).some(([j]) => same(j, k)));
    return new Map(
      shuffled(entries, random).map(([k, x]) => [permuted(k, random, dedupe), permuted(x, random, dedupe)]),
    );
  }
  if (v instanceof Set) return new Set(shuffled([...v], random).map((m) => permuted(m, random, dedupe)));
  const out: Record<string, unknown> = Object.getPrototypeOf(v) === null ? Object.create(null) : {};
  for (const k of shuffled(Object.keys(v), random)) {
    // defineProperty: a key named __proto__ stays an own key, as JSON.parse makes it.
    Object.defineProperty(out, k, {
      value: permuted((v as Record<string, unknown>)[k], random, dedupe),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return out;
}

/** A value of the domain whose Maps have structurally distinct keys (see the Map property below). */
const value = fc.tuple(anything, fc.integer()).map(([v, seed]) => permuted(v, prng(seed), true));

/** Values that differ from each other in type or structure only slightly. */
const confusable = (): unknown[] => [
  1,
  '1',
  1n,
  true,
  null,
  undefined,
  [1],
  { 0: 1 },
  new Set([1]),
  new Map([[1, 1]]),
  new Date(1),
  new Uint8Array([1]),
  new Int8Array([1]),
  new Float64Array([1]),
  Buffer.from([1]),
  -0,
  0,
  Number.NaN,
  [undefined],
  new Array(1),
  '',
  [],
  {},
  'a',
  ['a'],
  { a: undefined },
  Object.create(null),
];

/** Replaces the `pick`-th node (pre-order) of a copy of `v` with `replacement`. */
function replaceNode(v: unknown, pick: number, replacement: unknown): unknown {
  let n = pick;
  const walk = (x: unknown): unknown => {
    if (n-- === 0) return replacement;
    if (x === null || typeof x !== 'object' || ArrayBuffer.isView(x) || x instanceof Date) return x;
    if (Array.isArray(x)) {
      const out = new Array(x.length);
      for (let i = 0; i < x.length; i++) if (i in x) out[i] = walk(x[i]);
      return out;
    }
    if (x instanceof Map) return new Map([...x].map(([k, y]) => [k, walk(y)]));
    if (x instanceof Set) return new Set([...x].map(walk));
    const out: Record<string, unknown> = Object.getPrototypeOf(x) === null ? Object.create(null) : {};
    for (const k of Object.keys(x))
      Object.defineProperty(out, k, {
        value: walk((x as Record<string, unknown>)[k]),
        enumerable: true,
        writable: true,
      });
    return out;
  };
  return walk(v);
}

describe('canonical encoding of cache keys (property-based)', () => {
  it('equal values give equal bytes whatever their key order and Map and Set insertion order', () => {
    fc.assert(
      fc.property(value, fc.integer(), (a, seed) => {
        const b = permuted(a, prng(seed));
        expect(encode(b).equals(encode(a))).toBe(true);
      }),
      params(300),
    );
  });

  it('encodeInto feeds a hash exactly the bytes of encode', () => {
    fc.assert(
      fc.property(value, (v) => {
        const h = createHash('sha256');
        encodeInto(h, v);
        expect(h.digest('hex')).toBe(createHash('sha256').update(encode(v)).digest('hex'));
      }),
      params(200),
    );
  });

  it('two values give the same bytes exactly when they are equal (one node changed, or two independent values)', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc
            .tuple(value, fc.nat(), fc.oneof(fc.constantFrom(...confusable()), value))
            .map(([a, pick, r]) => [a, replaceNode(a, pick, r)] as const),
          fc.tuple(value, value),
          fc.tuple(fc.constantFrom(...confusable()), fc.constantFrom(...confusable())),
        ),
        ([a, b]) => {
          expect(encode(a).equals(encode(b))).toBe(same(a, b));
        },
      ),
      params(500),
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Unsupported values: CacheKeyError naming where they are, never another error.

class Point {
  constructor(readonly x = 1) {}
}
const poisons: Array<{ name: string; make: () => unknown; message: RegExp }> = [
  { name: 'function', make: () => function named() {}, message: /a function \(named\)/ },
  { name: 'arrow', make: () => () => 1, message: /a function/ },
  { name: 'class', make: () => Point, message: /a function \(Point\)/ },
  { name: 'async', make: () => async () => 1, message: /a function/ },
  { name: 'symbol', make: () => Symbol('s'), message: /a symbol/ },
  { name: 'instance', make: () => new Point(), message: /a Point instance/ },
  { name: 'boxed', make: () => new Number(1), message: /a Number instance/ },
  { name: 'weakmap', make: () => new WeakMap(), message: /a WeakMap instance/ },
  { name: 'promise', make: () => Promise.resolve(1), message: /a Promise instance/ },
  { name: 'error', make: () => new Error('x'), message: /a Error instance/ },
  { name: 'symbol key', make: () => ({ [Symbol('k')]: 1 }), message: /symbol-keyed/ },
];

type Step =
  | { kind: 'key'; key: string; siblings: Record<string, unknown> }
  | { kind: 'index'; before: unknown[]; after: unknown[] }
  | { kind: 'map value'; key: string | number; siblings: Array<[unknown, unknown]> }
  | { kind: 'map key'; before: Array<[unknown, unknown]> }
  | { kind: 'set'; before: unknown[] }
  | { kind: 'declared' };

const sibling = fc.anything({ maxDepth: 1, maxKeys: 2, withMap: true, withSet: true });
const step: fc.Arbitrary<Step> = fc.oneof(
  fc.record({
    kind: fc.constant('key' as const),
    key: fc.string({ unit: nastyChar, maxLength: 6 }),
    siblings: fc.dictionary(fc.string(), sibling, { maxKeys: 2 }),
  }),
  fc.record({
    kind: fc.constant('index' as const),
    before: fc.array(sibling, { maxLength: 2 }),
    after: fc.array(sibling, { maxLength: 2 }),
  }),
  fc.record({
    kind: fc.constant('map value' as const),
    key: fc.oneof(fc.string({ maxLength: 4 }), fc.integer()),
    siblings: fc.array(
      fc.tuple(
        fc.string({ maxLength: 4 }).map((k) => `s${k}`),
        sibling,
      ),
      { maxLength: 2 },
    ),
  }),
  fc.record({
    kind: fc.constant('map key' as const),
    before: fc.array(fc.tuple(fc.string({ maxLength: 4 }), sibling), { maxLength: 2 }),
  }),
  fc.record({
    kind: fc.constant('set' as const),
    before: fc.array(fc.string({ maxLength: 4 }), { maxLength: 2 }),
  }),
  fc.constant({ kind: 'declared' as const }),
);

/** Wraps `inner` one step up, and says what that step adds to the path of whatever is inside. */
function wrap(inner: unknown, s: Step, path: string): { value: unknown; path: string } {
  switch (s.kind) {
    case 'key': {
      const o: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(s.siblings)) if (k !== s.key) o[k] = v;
      Object.defineProperty(o, s.key, { value: inner, enumerable: true });
      return { value: o, path: `.${s.key}${path}` };
    }
    case 'index':
      return { value: [...s.before, inner, ...s.after], path: `[${s.before.length}]${path}` };
    case 'map value': {
      const m = new Map<unknown, unknown>(s.siblings);
      m.set(s.key, inner);
      const described = typeof s.key === 'string' ? JSON.stringify(s.key) : String(s.key);
      return { value: m, path: `.get(${described})${path}` };
    }
    case 'map key':
      return { value: new Map([...s.before, [inner, 1]]), path: `.keys()[${new Map(s.before).size}]${path}` };
    case 'set':
      return {
        value: new Set([...new Set(s.before), inner]),
        path: `.values()[${new Set(s.before).size}]${path}`,
      };
    case 'declared':
      return {
        value: new (class Declared {
          [cacheKey]() {
            return inner;
          }
        })(),
        path: `[cacheKey]()${path}`,
      };
  }
}

describe('unsupported cache-key values (property-based)', () => {
  it('a function, symbol or undeclared class instance anywhere gives a CacheKeyError with its exact path', () => {
    fc.assert(
      fc.property(fc.constantFrom(...poisons), fc.array(step, { maxLength: 5 }), (poison, steps) => {
        let built = { value: poison.make(), path: '' };
        for (const s of steps) built = wrap(built.value, s, built.path);
        const error = thrown(() => encode(built.value));
        expect(error).toBeInstanceOf(CacheKeyError);
        expect((error as CacheKeyError).path).toBe(`value${built.path}`);
        expect((error as Error).message).toMatch(poison.message);
      }),
      params(300),
    );
  });

  it('a value that contains itself anywhere gives a CacheKeyError', () => {
    fc.assert(
      fc.property(fc.array(step, { minLength: 1, maxLength: 5 }), fc.nat(), (steps, at) => {
        // A hole to fill with the outermost value once it exists: the cycle runs through every step.
        const hole: Record<string, unknown> = {};
        let built: { value: unknown; path: string } = { value: hole, path: '' };
        for (const s of steps) built = wrap(built.value, s, built.path);
        hole[`k${at % 3}`] = built.value;
        const error = thrown(() => encode(built.value));
        expect(error).toBeInstanceOf(CacheKeyError);
        expect((error as Error).message).toMatch(/a circular reference/);
      }),
      params(200),
    );
  });

  it('arguments nested absurdly deep (100,000 levels) give a CacheKeyError, not a RangeError', () => {
    fc.assert(
      fc.property(
        fc.constantFrom('array', 'object', 'map', 'set'),
        fc.integer({ min: 100_000, max: 150_000 }),
        (kind, depth) => {
          let v: unknown = 1;
          for (let i = 0; i < depth; i++) {
            v =
              kind === 'array'
                ? [v]
                : kind === 'object'
                  ? { v }
                  : kind === 'map'
                    ? new Map([[1, v]])
                    : new Set([v]);
          }
          expect(thrown(() => encode(v))).toBeInstanceOf(CacheKeyError);
        },
      ),
      params(8, { endOnFailure: true }),
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Found by the properties above (with wider generators), and fixed.

describe('canonical encoding: bugs the properties found (property-based)', () => {
  // Was a bug (memo/encode.ts): strings were written as UTF-8 with Buffer.from(string), which turns
  // every lone surrogate into U+FFFD, so distinct strings (as values, object keys or Map keys) gave
  // the same bytes and shared a cache entry: a function called with "\uD800" returned the result
  // stored for "\uDC00" or "\uFFFD". Minimal counterexample: "\uD800" and "\uDC00".
  it('distinct strings, lone surrogates included, give distinct bytes', () => {
    fc.assert(
      fc.property(
        fc.string({ unit: nastyChar, minLength: 1, maxLength: 8 }),
        fc.nat(),
        nastyChar,
        fc.constantFrom('value', 'key'),
        (s, at, c, where) => {
          const i = at % s.length;
          const t = s.slice(0, i) + c + s.slice(i + 1);
          fc.pre(s !== t);
          const wrapIt = (x: string) => (where === 'value' ? x : { [x]: 1 });
          expect(encode(wrapIt(s)).equals(encode(wrapIt(t)))).toBe(false);
        },
      ),
      params(300, { examples: [['\uD800', 0, '\uDC00', 'value']], endOnFailure: true }),
    );
  });

  // Was a bug (memo/encode.ts): Map entries were sorted by the bytes of their keys only, so two keys
  // that encode alike (distinct objects that are structurally equal) kept their insertion order, and
  // the same Map built in another order gave other bytes (a cache miss). Minimal counterexample:
  // new Map([[{}, 0], [{}, 1]]) and new Map([[{}, 1], [{}, 0]]).
  it('a Map whose keys are structurally equal gives equal bytes in any insertion order', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.constantFrom({}, [], { a: 1 }), fc.integer()), { minLength: 2, maxLength: 5 }),
        fc.integer(),
        (entries, seed) => {
          const a = new Map(entries.map(([k, v]) => [structuredClone(k), v] as const));
          const b = permuted(a, prng(seed));
          expect(encode(b).equals(encode(a))).toBe(true);
        },
      ),
      params(100, {
        examples: [
          [
            [
              [{}, 0],
              [{}, 1],
            ],
            0, // a seed whose shuffle swaps the two entries
          ],
        ],
        endOnFailure: true,
      }),
    );
  });

  // Was a bug (memo/encode.ts): an instance of a class that extends Map, Set, Array, Date, RegExp or
  // a typed array, without [cacheKey], was encoded as its base class: its class and its own fields
  // were dropped silently (the doc says such instances are refused). Minimal counterexample:
  // new (class Tagged extends Map {})() encoded as new Map().
  it('an instance of a subclass of a built-in without [cacheKey] gives a CacheKeyError', () => {
    class TaggedMap extends Map<unknown, unknown> {
      tag = 'a';
    }
    class TaggedSet extends Set<unknown> {}
    class TaggedArray extends Array<unknown> {}
    class TaggedDate extends Date {}
    class TaggedBytes extends Uint8Array {}
    fc.assert(
      fc.property(
        fc.constantFrom<() => unknown>(
          () => new TaggedMap(),
          () => new TaggedSet([1]),
          () => TaggedArray.from([1]),
          () => new TaggedDate(0),
          () => new TaggedBytes(2),
        ),
        (make) => {
          expect(thrown(() => encode(make()))).toBeInstanceOf(CacheKeyError);
        },
      ),
      params(20, { endOnFailure: true }),
    );
  });
});
