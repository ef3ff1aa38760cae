import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  DiskLocation,
  HashKeyStorage,
  Level,
  Levels,
  MemoError,
  RedisLocation,
  smartCache,
} from '@tarnjs/tarn';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { available } from '../../bed/index.js';
import { type Redis, startRedis } from '../../bed/services.js';
import { REPO, run } from '../../helpers/spawn.js';
import { freshPath, tempDir } from '../../helpers/tmp.js';

const base = tempDir();
const LIB = pathToFileURL(join(REPO, 'src-lib/dist/index.js')).href;

/**
 * A small project as a user writes it: a cached function in main.mjs that uses a marked helper
 * (mid), which uses another marked helper two calls down (leaf, imported under another name),
 * and an unmarked helper. Tests edit these files between runs, as a user edits code.
 */
function project(): { dir: string; edit: (file: string, from: string, to: string) => void } {
  const dir = freshPath(base, 'project');
  mkdirSync(dir);
  const files: Record<string, string> = {
    'helpers.mjs': `import { markUnstable } from '${LIB}';
export const leaf = markUnstable(function leaf(x) { return x * 2; });
export function unmarked(x) { return x + 100; }
`,
    'mid.mjs': `import { markUnstable } from '${LIB}';
import { leaf as twice } from './helpers.mjs';
export const mid = markUnstable(function mid(x) { return twice(x) + 1; });
`,
    'main.mjs': `import { appendFileSync } from 'node:fs';
import { RedisLocation, smartCache } from '${LIB}';
import { mid } from './mid.mjs';
import { unmarked } from './helpers.mjs';
const env = process.env;
const target = env.REDIS
  ? { storage: env.CACHE + '/storage', index: new RedisLocation({ url: env.REDIS, prefix: 'memo:' }) }
  : env.CACHE;
const cached = smartCache(target, { lock: { ttlMs: Number(env.TTL ?? 30000) } })(async function compute(x) {
  appendFileSync(env.CALLS, process.pid + '\\n');
  await new Promise((r) => setTimeout(r, Number(env.SLOW ?? 0)));
  return { value: mid(unmarked(x)), map: new Map([['at', process.pid]]) };
});
const result = await cached(Number(env.X ?? 1));
console.log(JSON.stringify({ value: result.value, isMap: result.map instanceof Map, stats: cached.stats }));
process.exit(0);
`,
  };
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  const edit = (file: string, from: string, to: string) => {
    const path = join(dir, file);
    const text = readFileSync(path, 'utf8');
    if (!text.includes(from)) throw new Error(`${from} not in ${file}`);
    writeFileSync(path, text.replace(from, to));
  };
  return { dir, edit };
}

interface Outcome {
  value: number;
  isMap: boolean;
  stats: { hits: number; misses: number; repaired: number };
}

async function call(dir: string, env: Record<string, string> = {}): Promise<Outcome> {
  const r = await run(process.execPath, [join(dir, 'main.mjs')], {
    cwd: dir,
    env: { CACHE: join(dir, 'cache'), CALLS: join(dir, 'calls'), ...env },
  });
  if (r.code !== 0) throw new Error(`main.mjs failed (${r.code}): ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').at(-1) as string);
}

/** Starts a slow call and SIGKILLs it once it computes, leaving its lock or lease behind. */
async function crashWhileComputing(dir: string, env: Record<string, string> = {}): Promise<void> {
  const holder = spawn(process.execPath, [join(dir, 'main.mjs')], {
    cwd: dir,
    env: { ...process.env, CACHE: join(dir, 'cache'), CALLS: join(dir, 'calls'), SLOW: '60000', ...env },
  });
  while (calls(dir) === 0) await new Promise((r) => setTimeout(r, 20));
  holder.kill('SIGKILL');
  await new Promise((r) => holder.once('exit', r));
}

const calls = (dir: string) => {
  try {
    return readFileSync(join(dir, 'calls'), 'utf8').trim().split('\n').filter(Boolean).length;
  } catch {
    return 0;
  }
};

describe('smartCache across processes', () => {
  it('hits in a new process; misses when the function or a marked helper two calls down changes', async () => {
    const { dir, edit } = project();
    expect(await call(dir)).toMatchObject({ value: 203, isMap: true, stats: { hits: 0, misses: 1 } });
    // A new process: a hit, with the Map intact (lossless serialisation).
    expect(await call(dir)).toMatchObject({ value: 203, isMap: true, stats: { hits: 1, misses: 0 } });
    // Comments and formatting do not matter.
    edit('main.mjs', 'await new Promise(', '/* slow on purpose */ await    new Promise(');
    expect((await call(dir)).stats).toMatchObject({ hits: 1, misses: 0 });
    // An unmarked helper is not part of the key: a hit, with the old result.
    edit('helpers.mjs', 'x + 100', 'x + 200');
    expect(await call(dir)).toMatchObject({ value: 203, stats: { hits: 1 } });
    // The marked helper two calls down (leaf, via mid, imported as `twice`) changes: a miss.
    edit('helpers.mjs', 'x * 2', 'x * 3');
    expect(await call(dir)).toMatchObject({ value: 3 * 201 + 1, stats: { hits: 0, misses: 1 } });
    // The function itself changes: a miss.
    edit('main.mjs', 'value: mid(unmarked(x))', 'value: mid(unmarked(x)) + 1');
    expect(await call(dir)).toMatchObject({ value: 3 * 201 + 2, stats: { misses: 1 } });
    // Other arguments: another entry.
    expect(await call(dir, { X: '2' })).toMatchObject({ stats: { misses: 1 } });
    expect(calls(dir)).toBe(4);
  });

  it('the README example: a marked helper in the same module, declared after the cached function', async () => {
    const dir = freshPath(base, 'readme');
    mkdirSync(dir);
    const main = join(dir, 'main.mjs');
    writeFileSync(
      main,
      `import { markUnstable, smartCache } from '${LIB}';
const myExpensiveFunction = smartCache(${JSON.stringify(join(dir, 'cache'))})(async function myExpensiveFunction(x) {
  const y = x ** 2;
  return myOtherFunction(x, y);
});
const myOtherFunction = markUnstable(function myOtherFunction(x, y) {
  const z = x * y;
  return x + y + z;
});
console.log(JSON.stringify({ value: await myExpensiveFunction(3), stats: myExpensiveFunction.stats }));
`,
    );
    const once = async () => JSON.parse((await run(process.execPath, [main])).stdout) as Outcome;
    expect(await once()).toMatchObject({ value: 39, stats: { misses: 1 } });
    expect(await once()).toMatchObject({ value: 39, stats: { hits: 1 } });
    writeFileSync(main, readFileSync(main, 'utf8').replace('x + y + z', 'x + y - z'));
    expect(await once()).toMatchObject({ value: -15, stats: { misses: 1 } });
  });

  it('markModuleUnstable marks every export of a module; cycles between marked functions are fine', async () => {
    const dir = freshPath(base, 'module');
    mkdirSync(dir);
    writeFileSync(
      join(dir, 'helpers.mjs'),
      `export function even(n) { return n === 0 ? true : odd(n - 1); }
export function odd(n) { return n === 0 ? false : even(n - 1); }
export function scale(x) { return x * 10; }
`,
    );
    const main = join(dir, 'main.mjs');
    writeFileSync(
      main,
      `import { markModuleUnstable, smartCache } from '${LIB}';
import * as h from './helpers.mjs';
markModuleUnstable(h, new URL('./helpers.mjs', import.meta.url).href);
const f = smartCache(${JSON.stringify(join(dir, 'cache'))})(async function f(x) { return h.even(x) ? h.scale(x) : 0; });
console.log(JSON.stringify({ value: await f(4), stats: f.stats }));
`,
    );
    const once = async () => JSON.parse((await run(process.execPath, [main])).stdout) as Outcome;
    expect(await once()).toMatchObject({ value: 40, stats: { misses: 1 } });
    expect(await once()).toMatchObject({ stats: { hits: 1 } });
    // odd is reached only through even (a cycle): changing it invalidates too.
    const helpers = join(dir, 'helpers.mjs');
    writeFileSync(helpers, readFileSync(helpers, 'utf8').replace('n === 0 ? false', 'n === 0 ? false '));
    expect(await once()).toMatchObject({ stats: { hits: 1 } });
    writeFileSync(
      helpers,
      readFileSync(helpers, 'utf8').replace('odd(n) { return n === 0', 'odd(n) { return n <= 0'),
    );
    expect(await once()).toMatchObject({ value: 40, stats: { misses: 1 } });
  });

  it('finds marked helpers in TypeScript modules too (run with tsx, imported as ./helpers.js)', async () => {
    const dir = freshPath(base, 'ts');
    mkdirSync(dir);
    writeFileSync(join(dir, 'package.json'), '{"type":"module"}');
    writeFileSync(
      join(dir, 'helpers.ts'),
      `import { markUnstable } from '${LIB}';
export const leaf = markUnstable(function leaf(x: number): number { return x * 2; });
`,
    );
    writeFileSync(
      join(dir, 'main.ts'),
      `import type { Stats } from 'node:fs';
import { smartCache } from '${LIB}';
import { leaf as twice } from './helpers.js';
const f = smartCache(${JSON.stringify(join(dir, 'cache'))})(async function f(x: number): Promise<number> { return twice(x) + 1; });
const unused: Stats | undefined = undefined;
console.log(JSON.stringify({ value: await f(3), stats: f.stats, unused }));
`,
    );
    const tsx = join(REPO, 'node_modules', '.bin', 'tsx');
    const once = async () =>
      JSON.parse((await run(tsx, [join(dir, 'main.ts')], { cwd: dir })).stdout) as Outcome;
    expect(await once()).toMatchObject({ value: 7, stats: { misses: 1 } });
    expect(await once()).toMatchObject({ value: 7, stats: { hits: 1 } });
    const helpers = join(dir, 'helpers.ts');
    writeFileSync(helpers, readFileSync(helpers, 'utf8').replace('x * 2', 'x * 5'));
    expect(await once()).toMatchObject({ value: 16, stats: { misses: 1 } });
  });

  it('8 processes calling the same slow function at once run it once (lock file on disk)', async () => {
    const { dir } = project();
    const outcomes = await Promise.all(Array.from({ length: 8 }, () => call(dir, { SLOW: '1500' })));
    expect(calls(dir)).toBe(1);
    expect(new Set(outcomes.map((o) => o.value))).toEqual(new Set([203]));
    expect(outcomes.filter((o) => o.stats.misses === 1)).toHaveLength(1);
  });

  it('a crashed holder does not block the others (its lock dies with it)', async () => {
    const { dir } = project();
    await crashWhileComputing(dir);
    const began = Date.now();
    expect(await call(dir)).toMatchObject({ value: 203, stats: { misses: 1 } });
    expect(Date.now() - began).toBeLessThan(15_000);
  });

  it('a corrupt index entry or blob counts as a miss and is repaired', async () => {
    const { dir } = project();
    await call(dir);
    const entries = (root: string) =>
      readdirSync(root)
        .filter((d) => /^[0-9a-f]{2}$/.test(d))
        .flatMap((d) => readdirSync(join(root, d)).map((f) => join(root, d, f)));
    const [entry] = entries(join(dir, 'cache', 'index'));
    overwrite(entry as string, '{"tarn":"memo/1","val');
    expect(await call(dir)).toMatchObject({ value: 203, stats: { misses: 1, repaired: 1 } });
    expect(await call(dir)).toMatchObject({ stats: { hits: 1 } });
    // Results hold the pid, so each computation stored another blob: spoil them all.
    for (const blob of entries(join(dir, 'cache', 'storage'))) overwrite(blob, 'not what was stored');
    expect(await call(dir)).toMatchObject({ value: 203, stats: { misses: 1, repaired: 1 } });
    expect(await call(dir)).toMatchObject({ stats: { hits: 1 } });
    expect(calls(dir)).toBe(3);
  });
});

function overwrite(path: string, text: string): void {
  chmodSync(path, 0o644);
  writeFileSync(path, text);
}

describe.runIf(available('redis'))('smartCache with a Redis index', () => {
  let redis: Redis;
  beforeAll(async () => {
    redis = await startRedis();
  }, 60_000);
  afterAll(() => redis?.stop());

  it('8 processes run the function once, holding a Redis lease', async () => {
    const { dir } = project();
    const outcomes = await Promise.all(
      Array.from({ length: 8 }, () => call(dir, { SLOW: '1500', REDIS: redis.url })),
    );
    expect(calls(dir)).toBe(1);
    expect(new Set(outcomes.map((o) => o.value))).toEqual(new Set([203]));
    expect(await call(dir, { REDIS: redis.url })).toMatchObject({ stats: { hits: 1 } });
  });

  it('works with a Levels index: entries are copied up, not mistaken for corrupt blobs', async () => {
    const folder = freshPath(base);
    const cacheLevel = new RedisLocation({ url: redis.url, prefix: 'memo-levels:' });
    const index = new Levels(new Level(cacheLevel, { write: false }), join(folder, 'index'));
    let runs = 0;
    const f = smartCache({ storage: join(folder, 'storage'), index })((x: number) => {
      runs++;
      return { x };
    });
    expect(await f(1)).toEqual({ x: 1 });
    const key = await f.keyOf(1);
    expect(await cacheLevel.contains(key)).toBe(false); // written to the disk level only
    expect(await f(1)).toEqual({ x: 1 }); // a hit, copied into Redis on the way
    expect(await cacheLevel.contains(key)).toBe(true);
    expect(await f(1)).toEqual({ x: 1 }); // served by Redis
    expect(runs).toBe(1);
    expect(index.stats.faults).toEqual({});
    await index.close();
  });

  it("a crashed holder's Redis lease expires and another process computes", async () => {
    const { dir } = project();
    await crashWhileComputing(dir, { REDIS: redis.url, TTL: '1500' });
    const began = Date.now();
    expect(await call(dir, { REDIS: redis.url, TTL: '1500' })).toMatchObject({
      value: 203,
      stats: { misses: 1 },
    });
    const waited = Date.now() - began;
    // It had to wait for the lease to expire (up to its 1.5 s), not for the dead holder's minute.
    expect(waited).toBeLessThan(10_000);
    expect(calls(dir)).toBe(2);
  });
});

describe('smartCache in one process', () => {
  it('runs identical concurrent calls once and does not cache exceptions', async () => {
    let runs = 0;
    const slow = smartCache(freshPath(base))(async (x: number) => {
      runs++;
      await new Promise((r) => setTimeout(r, 100));
      if (x < 0) throw new Error('negative');
      return x * 10;
    });
    expect(await Promise.all([1, 1, 1, 1, 1].map((x) => slow(x)))).toEqual([10, 10, 10, 10, 10]);
    expect(runs).toBe(1);
    expect(slow.stats).toMatchObject({ misses: 1, joined: 4 });
    await expect(slow(-1)).rejects.toThrow('negative');
    await expect(slow(-1)).rejects.toThrow('negative');
    expect(runs).toBe(3);
  });

  it('stores equal results once, honours version, key and json options, and forgets', async () => {
    const folder = freshPath(base);
    const f = smartCache(folder)((x: number) => ({ same: true, x: x > 0 }));
    await f(1);
    await f(2);
    const stored: string[] = [];
    for await (const k of new HashKeyStorage(join(folder, 'storage')).keys()) stored.push(k);
    expect(stored).toHaveLength(1);

    const v1 = smartCache(folder, { version: 1 })((x: number) => x);
    const v2 = smartCache(folder, { version: 2 })((x: number) => x);
    expect(await v1.keyOf(1)).not.toBe(await v2.keyOf(1));

    const byId = smartCache(folder, { key: (req: { id: string }) => req.id })(
      (req: { id: string; at: Date }) => req.id.toUpperCase(),
    );
    expect(await byId.keyOf({ id: 'a', at: new Date(1) })).toBe(
      await byId.keyOf({ id: 'a', at: new Date(2) }),
    );

    const asJson = smartCache(folder, { serializer: 'json' })((x: number) => ({ x }));
    expect(await asJson(3)).toEqual({ x: 3 });
    expect(await asJson(3)).toEqual({ x: 3 });
    expect(asJson.stats).toMatchObject({ hits: 1, misses: 1 });
    expect(await asJson.forget(3)).toBe(true);
    await asJson(3);
    expect(asJson.stats.misses).toBe(2);
  });

  it('computes when its index server is down, and says so in stats', async () => {
    const index = new RedisLocation({ url: 'redis://127.0.0.1:1', connectTimeoutMs: 200 });
    const f = smartCache({ storage: freshPath(base), index })((x: number) => x * 3);
    expect(await f(2)).toBe(6);
    expect(await f(2)).toBe(6);
    expect(f.stats).toMatchObject({ hits: 0, misses: 2, unavailable: 2, unstored: 2 });
    await index.close();
  });

  it('gives a clear error for arguments without a canonical encoding', async () => {
    const f = smartCache(freshPath(base))((cb: () => number) => cb());
    await expect(f(() => 1)).rejects.toMatchObject({ code: 'TARN_CACHE_KEY', path: 'args[0]' });
  });

  it('keeps its index inside a disk lake it is given (tools/memo)', async () => {
    const lake = freshPath(base);
    const f = smartCache(new HashKeyStorage(lake))((x: number) => x + 1);
    expect(await f(1)).toBe(2);
    expect(await new DiskLocation(join(lake, 'tools', 'memo')).contains(await f.keyOf(1))).toBe(true);
  });

  it('repairs an index entry that parses to JSON but not to an entry (null, a number, a list)', async () => {
    for (const text of ['null', '42', '"entry"', '[]', 'true']) {
      const folder = freshPath(base);
      let runs = 0;
      const f = smartCache(folder)((x: number) => {
        runs++;
        return { x };
      });
      await f(1);
      const entry = new DiskLocation(join(folder, 'index')).pathOf(await f.keyOf(1));
      overwrite(entry, text);
      expect(await f(1)).toEqual({ x: 1 });
      expect(f.stats).toMatchObject({ hits: 0, misses: 2, repaired: 1 });
      // Rewritten: the next call is a hit.
      expect(JSON.parse(readFileSync(entry, 'utf8'))).toMatchObject({ tarn: 'tarn-memo/1' });
      expect(await f(1)).toEqual({ x: 1 });
      expect(f.stats).toMatchObject({ hits: 1, misses: 2, repaired: 1 });
      expect(runs).toBe(2);
    }
  });

  it('repairs an index entry or a value blob that is a folder: the call returns its value, the next hits', async () => {
    const folder = freshPath(base);
    let runs = 0;
    const f = smartCache(folder)((x: number) => {
      runs++;
      return { x };
    });
    await f(1);
    const index = new DiskLocation(join(folder, 'index'));
    const entry = index.pathOf(await f.keyOf(1));
    const valueKey = (JSON.parse(readFileSync(entry, 'utf8')) as { value: string }).value;
    // An empty folder where the entry was, and a folder holding a folder named `data` (not
    // Python tarn's legacy <key>/data file) where the value blob was.
    rmSync(entry);
    mkdirSync(entry);
    expect(await f(1)).toEqual({ x: 1 });
    expect(statSync(entry).isFile()).toBe(true);
    const blob = new DiskLocation(join(folder, 'storage')).pathOf(valueKey);
    rmSync(blob);
    mkdirSync(join(blob, 'data'), { recursive: true });
    expect(await f(1)).toEqual({ x: 1 });
    expect(statSync(blob).isFile()).toBe(true);
    expect(runs).toBe(3);
    expect(await f(1)).toEqual({ x: 1 });
    // The index reads a folder as no entry (a plain miss); the storage, as a missing blob (a repair).
    expect(f.stats).toMatchObject({ hits: 1, misses: 3, repaired: 1 });
    // The folders were moved aside, not deleted: a lake never destroys what it did not write.
    expect(readdirSync(join(folder, 'index', 'tools', 'quarantine'))).toHaveLength(1);
    expect(readdirSync(join(folder, 'storage', 'tools', 'quarantine'))).toHaveLength(1);
  });

  it('a result the serializer cannot store is a MemoError naming the part, thrown at every call', async () => {
    class Session {
      readonly id = 7;
      readonly pending = Promise.resolve(1);
    }
    const cases: Array<{
      serializer: 'v8' | 'json';
      result: () => unknown;
      message: RegExp;
    }> = [
      {
        serializer: 'v8',
        result: () => ({ n: 1, opts: { cb: function onDone() {} } }),
        message: /result\.opts\.cb is a function \(onDone\)/,
      },
      { serializer: 'v8', result: () => [new Session()], message: /result\[0\]\.pending is a Promise/ },
      {
        serializer: 'v8',
        result: () => new Map([['k', Symbol('s')]]),
        message: /result\.get\("k"\) is a symbol/,
      },
      { serializer: 'json', result: () => ({ big: 2n ** 70n }), message: /result\.big is a BigInt/ },
      {
        serializer: 'json',
        result: () => {
          const loop: Record<string, unknown> = { a: 1 };
          loop.self = loop;
          return loop;
        },
        message: /result\.self is a circular reference/,
      },
      { serializer: 'json', result: () => undefined, message: /result is undefined/ },
    ];
    for (const { serializer, result, message } of cases) {
      let runs = 0;
      const f = smartCache(freshPath(base), { serializer })((_x: number) => {
        runs++;
        return result();
      });
      for (let call = 1; call <= 2; call++) {
        const error = await f(1).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(MemoError);
        expect(error).toMatchObject({ code: 'TARN_MEMO', message: expect.stringMatching(message) });
        expect((error as Error).message).toContain(`${serializer} serializer`);
        expect((error as Error).cause).toBeInstanceOf(Error);
      }
      // Nothing half-stored: no index entry, so each call runs the function and says so again.
      expect(await f.forget(1)).toBe(false);
      expect(runs).toBe(2);
      expect(f.stats).toMatchObject({ hits: 0, misses: 2, unstored: 2 });
    }
  });

  it('a result nested too deeply to serialise is a MemoError, not a RangeError', async () => {
    const f = smartCache(freshPath(base))(() => {
      let deep: unknown[] = [];
      for (let i = 0; i < 100_000; i++) deep = [deep];
      return deep;
    });
    await expect(f()).rejects.toMatchObject({
      code: 'TARN_MEMO',
      message: expect.stringMatching(/nested too deeply/),
    });
  });

  it('arguments or a key nested too deeply are a CacheKeyError naming where, not a RangeError', async () => {
    let deep: unknown[] = [];
    for (let i = 0; i < 100_000; i++) deep = [deep];
    const f = smartCache(freshPath(base))((_x: unknown) => 1);
    await expect(f(deep)).rejects.toMatchObject({
      code: 'TARN_CACHE_KEY',
      path: expect.stringMatching(/^args\[0\]\[0\]\[0\].*\(\d+ levels\)/),
      message: expect.stringMatching(/nested more than 10000 levels deep/),
    });
    const byKey = smartCache(freshPath(base), { key: () => deep })((_x: number) => 1);
    await expect(byKey(1)).rejects.toMatchObject({
      code: 'TARN_CACHE_KEY',
      path: expect.stringMatching(/^key\(\.\.\.args\)\[0\]\[0\]/),
    });
  });
});
