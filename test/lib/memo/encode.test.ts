import { createHash } from 'node:crypto';
import { CacheKeyError, cacheKey, encodeCacheKey } from '@tarnjs/tarn';
import { describe, expect, it } from 'vitest';

const same = (a: unknown, b: unknown) => encodeCacheKey(a).equals(encodeCacheKey(b));

describe('canonical encoding of cache keys', () => {
  it('ignores object key order and Map and Set insertion order', () => {
    expect(same({ a: 1, b: { c: 2, d: 3 } }, { b: { d: 3, c: 2 }, a: 1 })).toBe(true);
    expect(
      same(
        new Map<unknown, unknown>([
          ['x', 1],
          [2, 'y'],
        ]),
        new Map<unknown, unknown>([
          [2, 'y'],
          ['x', 1],
        ]),
      ),
    ).toBe(true);
    expect(same(new Set([1, 'a', { z: 1 }]), new Set([{ z: 1 }, 'a', 1]))).toBe(true);
  });

  it('orders Map entries whose keys encode alike by their values, and Set members that encode alike', () => {
    const a = new Map<unknown, unknown>([
      [{}, 0],
      [{}, { b: [1] }],
      ['k', 2],
      [{}, 1],
    ]);
    const b = new Map<unknown, unknown>([
      [{}, 1],
      ['k', 2],
      [{}, { b: [1] }],
      [{}, 0],
    ]);
    expect(same(a, b)).toBe(true);
    expect(same(a, new Map<unknown, unknown>([...a].map(([k, v]) => [k, v === 1 ? 3 : v])))).toBe(false);
    expect(same(new Set([{ a: 1 }, { a: 1 }, 2]), new Set([2, { a: 1 }, { a: 1 }]))).toBe(true);
    // Keys that encode apart keep the bytes they always had: values play no part in their order.
    const distinct = new Map<unknown, unknown>([
      [{ z: 1 }, 'a'],
      ['k', 'b'],
    ]);
    expect(encodeCacheKey(distinct).toString('hex')).toBe(
      [
        '6d0000000132', // m, 2 entries, sorted by their keys' bytes ('o' before 's')
        '6f0000000131' + '73000000017a' + '64000000083ff0000000000000', // {z: 1}
        '730000000161', // → 'a'
        '73000000016b', // 'k'
        '730000000162', // → 'b'
      ].join(''),
    );
  });

  it('keeps values of different types apart', () => {
    const values: unknown[] = [
      1,
      '1',
      1n,
      true,
      null,
      undefined,
      [1],
      { 0: 1 },
      new Set([1]),
      new Map([[0, 1]]),
      new Date(1),
      Buffer.from([1]),
      new Uint8Array([1]),
      new Int8Array([1]),
      new Float64Array([1]),
      new Uint8Array([1]).buffer,
      -0,
      0,
      Number.NaN,
      [undefined],
      new Array(1), // a hole, not undefined
      '',
      [],
      {},
    ];
    const encodings = values.map((v) => encodeCacheKey(v).toString('hex'));
    expect(new Set(encodings).size).toBe(values.length);
  });

  it('encodes nested values and strings unambiguously', () => {
    expect(same(['ab', 'c'], ['a', 'bc'])).toBe(false);
    expect(same({ a: 'b,c' }, { 'a,b': 'c' })).toBe(false);
    expect(same(new Date('2026-01-01'), new Date('2026-01-01T00:00:00Z'))).toBe(true);
    expect(same(2n ** 70n, 2n ** 70n)).toBe(true);
  });

  it('keeps strings with lone surrogates apart, and well-formed strings as UTF-8', () => {
    const strings = [
      '\uD800',
      '\uDC00',
      '\uFFFD',
      '\uDC00\uD800',
      '\uD83D\uDE00',
      '\uD83D\uD83D\uDE00',
      'a\uDFFFb',
    ];
    const encodings = strings.map((s) => encodeCacheKey(s).toString('hex'));
    expect(new Set(encodings).size).toBe(strings.length);
    // As object keys too.
    expect(same({ '\uD800': 1 }, { '\uDC00': 1 })).toBe(false);
    // A well-formed string is its UTF-8 bytes, as it always was; a lone surrogate is the three bytes
    // UTF-8 would give its code unit (WTF-8), which no well-formed string has.
    const body = (s: string) => encodeCacheKey(s).subarray(5).toString('hex');
    expect(body('\uD83D\uDE00é')).toBe(Buffer.from('\u{1F600}é', 'utf8').toString('hex'));
    expect(body('a\uD800b')).toBe('61eda08062');
    expect(body('\uD83D\uD83D\uDE00')).toBe(`eda0bd${Buffer.from('\u{1F600}').toString('hex')}`);
    expect(body('\uDFFF\uD800')).toBe('edbfbfeda080');
  });

  it('refuses functions, symbols, cycles and undeclared class instances, naming where they are', () => {
    class Point {
      constructor(readonly x: number) {}
    }
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    const cases: Array<[unknown, RegExp]> = [
      [{ opts: { cb: () => 1 } }, /^value\.opts\.cb: a function/],
      [[1, Symbol('s')], /^value\[1\]: a symbol/],
      [{ p: new Point(1) }, /^value\.p: a Point instance has no declared encoding/],
      [cyclic, /^value\.self: a circular reference/],
      [
        (() => {
          const set = new Set<unknown>();
          set.add({ set });
          return set;
        })(),
        /^value\.values\(\)\[0\]\.set: a circular reference/,
      ],
      [
        (() => {
          const map = new Map<unknown, unknown>();
          map.set({ map }, 1);
          return map;
        })(),
        /^value\.keys\(\)\[0\]\.map: a circular reference/,
      ],
      [{ [Symbol('k')]: 1 }, /symbol-keyed/],
    ];
    for (const [value, message] of cases) {
      const err = (() => {
        try {
          encodeCacheKey(value);
        } catch (e) {
          return e;
        }
      })();
      expect(err).toBeInstanceOf(CacheKeyError);
      expect((err as Error).message).toMatch(message);
    }
  });

  it('refuses instances of subclasses of built-ins, naming the class and its base', () => {
    class Tagged extends Map<unknown, unknown> {
      tag = 'a';
    }
    class Stamp extends Date {}
    class Bytes extends Buffer {}
    class Failure extends Error {}
    const cases: Array<[unknown, RegExp]> = [
      [
        { m: new Tagged() },
        /^value\.m: a Tagged instance \(a subclass of Map\) has no declared encoding; give Tagged a \[cacheKey\]\(\)/,
      ],
      [[new Stamp(0)], /^value\[0\]: a Stamp instance \(a subclass of Date\)/],
      [
        new (class extends Set {})(),
        /^value: an instance of an anonymous class \(a subclass of Set\) has no declared/,
      ],
      [new (class extends Array {})(), /a subclass of Array/],
      [new (class extends RegExp {})('x'), /a subclass of RegExp/],
      [new (class extends Float64Array {})(1), /a subclass of Float64Array/],
      [Object.setPrototypeOf(Buffer.from('x'), Bytes.prototype), /a Bytes instance \(a subclass of Buffer\)/],
      [new Failure('x'), /^value: a Failure instance has no declared encoding/],
    ];
    for (const [value, message] of cases) {
      const error = (() => {
        try {
          encodeCacheKey(value);
        } catch (e) {
          return e;
        }
      })();
      expect(error).toBeInstanceOf(CacheKeyError);
      expect((error as Error).message).toMatch(message);
    }
    // Declared, a subclass is encoded as it says.
    class Keyed extends Map<unknown, unknown> {
      [cacheKey]() {
        return [...this.keys()];
      }
    }
    expect(same(new Keyed([[1, 2]]), new Keyed([[1, 3]]))).toBe(true);
    expect(same(new Keyed([[1, 2]]), new Map([[1, 2]]))).toBe(false);
  });

  it('uses a declared encoding for class instances', () => {
    class Point {
      constructor(
        readonly x: number,
        readonly label = Math.random(),
      ) {}
      [cacheKey]() {
        return { x: this.x };
      }
    }
    expect(same(new Point(1), new Point(1))).toBe(true);
    expect(same(new Point(1), new Point(2))).toBe(false);
    // The class name is part of it: another class with the same fields is another key.
    expect(same(new Point(1), { x: 1 })).toBe(false);
  });

  it('encodes containers nested 10,000 levels deep, whatever their kind (the encoder does not recurse)', () => {
    const nest = (wrap: (inner: unknown) => unknown, levels: number) => {
      let value: unknown = 1;
      for (let i = 0; i < levels; i++) value = wrap(value);
      return value;
    };
    const kinds: Array<(inner: unknown) => unknown> = [
      (v) => [v],
      (v) => ({ v }),
      (v) => new Set([v]),
      (v) => new Map([[v, 1]]),
      (v) => new Map([[1, v]]),
    ];
    for (const wrap of kinds) {
      const encoded = encodeCacheKey(nest(wrap, 10_000));
      expect(encoded.equals(encodeCacheKey(nest(wrap, 9_999)))).toBe(false);
    }
  });

  it('refuses containers nested deeper than 10,000 levels with a CacheKeyError and an abridged path', () => {
    let deep: unknown[] = [];
    for (let i = 0; i < 100_000; i++) deep = [deep];
    const error = (() => {
      try {
        encodeCacheKey({ a: deep });
      } catch (e) {
        return e as CacheKeyError;
      }
    })();
    expect(error).toBeInstanceOf(CacheKeyError);
    expect(error?.message).toMatch(/: nested more than 10000 levels deep; pass a `key` option/);
    // The first and last steps, and how many were left out between them.
    expect(error?.path).toBe(`value.a${'[0]'.repeat(15)}…(9968 levels)…${'[0]'.repeat(16)}`);
  });

  it('refuses a [cacheKey]() that never bottoms out instead of looping', () => {
    class Endless {
      [cacheKey]() {
        return new Endless();
      }
    }
    expect(() => encodeCacheKey(new Endless())).toThrow(/^value(\[cacheKey\]\(\))+…\(\d+ levels\)…/);
  });

  it('gives the same bytes as it always has (existing caches keep their keys)', () => {
    class Point {
      constructor(readonly x: number) {}
      [cacheKey]() {
        return { x: this.x };
      }
    }
    const withHole: unknown[] = [1, 'hole', 'two', -0, Number.NaN, 3n, null, undefined, true];
    delete withHole[1];
    const value = [
      { b: withHole, a: new Date(5) },
      new Map<unknown, unknown>([
        ['k', new Set([2, 1])],
        [{ z: 1 }, /re/g],
      ]),
      Buffer.from('buf'),
      new Float32Array([1.5]),
      new Point(2),
    ];
    // Pinned from the recursive encoder this one replaced.
    expect(createHash('sha256').update(encodeCacheKey(value)).digest('hex')).toBe(
      'd42a0b23697c45bc5b56d2bffa6e4daf7c2f5f1d82ebd5456a5319dfa70001ff',
    );
  });
});
