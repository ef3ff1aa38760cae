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

  it('refuse code nested too deeply to read with a MemoError, not a RangeError', async () => {
    const cache = smartCache(base);
    // Each is code V8 runs. Long chains are flat text but deep syntax trees: acorn parses a chain of
    // members without recursing, so it is the walk over the tree that runs out of stack.
    const members = new Function(`return function members(x) { return x${'.a'.repeat(50_000)}; }`)();
    const chain = new Function(`return function chain(x) { return x${' + 1'.repeat(20_000)}; }`)();
    const brackets = new Function(
      `return function brackets() { return ${'['.repeat(1_500)}${']'.repeat(1_500)}; }`,
    )();
    for (const fn of [members, chain, brackets] as Array<(x?: number) => unknown>) {
      await expect(cache(fn).keyOf(1)).rejects.toMatchObject({
        code: 'TARN_MEMO',
        message: expect.stringMatching(new RegExp(`^the code of ${fn.name} nests too deeply to be read`)),
      });
    }
    // A marked helper that nests too deeply says so too, from any cached function that uses it.
    const deepHelper = markUnstable(chain as (x: number) => number);
    await expect(smartCache(base, { deps: [deepHelper] })((x: number) => x).keyOf(1)).rejects.toThrow(
      /^the code of chain nests too deeply/,
    );
  });
});
