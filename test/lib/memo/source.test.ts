import { markUnstable, smartCache } from '@tarnjs/tarn';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../../helpers/tmp.js';

const base = tempDir();

describe('function fingerprints', () => {
  it('do not change with formatting or comments, and do change with code', async () => {
    const cache = smartCache(base);
    const a = cache(new Function('return function f(x) { return x + 1 }')() as (x: number) => number);
    const b = cache(
      new Function('return function f(x) {\n  // add one\n  return x   +   1; /* why */\n}')() as (
        x: number,
      ) => number,
    );
    const c = cache(new Function('return function f(x) { return x + 2 }')() as (x: number) => number);
    expect(await a.keyOf(1)).toBe(await b.keyOf(1));
    expect(await a.keyOf(1)).not.toBe(await c.keyOf(1));
  });

  it('read methods, arrows, async and generator functions, and refuse native ones', async () => {
    const cache = smartCache(base);
    const object = {
      method(x: number) {
        return x;
      },
      async *gen() {
        yield 1;
      },
    };
    await expect(cache(object.method).keyOf(1)).resolves.toMatch(/^[0-9a-f]{64}$/);
    await expect(cache(object.gen).keyOf()).resolves.toMatch(/^[0-9a-f]{64}$/);
    await expect(cache(async (x: number) => x).keyOf(1)).resolves.toMatch(/^[0-9a-f]{64}$/);
    await expect(cache(Math.max).keyOf(1)).rejects.toMatchObject({ code: 'TARN_MEMO' });
    await expect(cache(object.method.bind(object)).keyOf(1)).rejects.toThrow(/native or bound/);
  });

  it('include marked functions passed as deps', async () => {
    const cache = smartCache(base);
    const helper1 = markUnstable(new Function('return function helperDep(x) { return x }')());
    const helper2 = new Function('return function helperDep(x) { return -x }')();
    const f = (x: number) => x;
    expect(await smartCache(base, { deps: [helper1] })(f).keyOf(1)).not.toBe(await cache(f).keyOf(1));
    const withDeps1 = smartCache(base, { deps: [helper1] })(f);
    const withDeps2 = smartCache(base, { deps: [helper2] })(f);
    expect(await withDeps1.keyOf(1)).not.toBe(await withDeps2.keyOf(1));
  });
});
