import { readdirSync, readFileSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { DiskLocation, HashKeyStorage } from '@tarnjs/tarn';
import { describe, expect, it } from 'vitest';
import { pseudoRandom, sha256 } from '../../../helpers/data.js';
import { hookFsPromises } from '../../../helpers/fs-hooks.js';
import { child, collect } from '../../../helpers/spawn.js';
import { freshPath, tempDir } from '../../../helpers/tmp.js';

const base = tempDir();

describe('concurrent writers', () => {
  it('six processes writing the same and different keys: every write succeeds, one correct blob per key', async () => {
    const root = freshPath(base);
    new DiskLocation(root); // create the lake once, as `tarn init` would
    const shared = [0, 1, 2, 3, 4, 5, 6, 7].map((i) => ({ seed: `shared-${i}`, size: 1000 + i * 50_000 }));
    const procs = [0, 1, 2, 3, 4, 5].map((p) => {
      const own = [0, 1, 2].map((i) => ({ seed: `own-${p}-${i}`, size: 70_000 + i }));
      // Each process writes the shared values in its own order, so they collide at different moments.
      const order = [...shared.slice(p % 8), ...shared.slice(0, p % 8), ...own];
      return collect(child('writer.mjs', [root, JSON.stringify(order)]));
    });
    const outputs = await Promise.all(procs);
    const all = outputs.flatMap((o) => {
      expect(o.code, o.stderr).toBe(0);
      return JSON.parse(o.stdout) as Array<{ seed: string; key?: string; error?: string }>;
    });
    expect(all).toHaveLength(6 * 11);
    for (const r of all) {
      expect(r.error).toBeUndefined();
      const size = Number(
        r.seed.startsWith('shared')
          ? 1000 + Number(r.seed.split('-')[1]) * 50_000
          : 70_000 + Number(r.seed.split('-')[2]),
      );
      expect(r.key).toBe(sha256(pseudoRandom(r.seed, size)));
    }
    const lake = new DiskLocation(root);
    const keys: string[] = [];
    for await (const k of lake.keys()) keys.push(k);
    expect(keys).toHaveLength(8 + 18);
    for (const k of keys) expect(sha256(readFileSync(lake.pathOf(k)))).toBe(k);
    expect(readdirSync(join(root, '.tmp'))).toEqual([]);
  });

  it('many writes of one key inside one process store it once', async () => {
    const root = freshPath(base);
    const storage = new HashKeyStorage(root);
    const data = pseudoRandom('same', 300_000);
    const keys = await Promise.all(Array.from({ length: 32 }, () => storage.write(data)));
    expect(new Set(keys)).toEqual(new Set([sha256(data)]));
    expect(readdirSync(join(root, keys[0]?.slice(0, 2) as string))).toEqual([keys[0]?.slice(2)]);
    expect(readdirSync(join(root, '.tmp'))).toEqual([]);
  });
});

describe('a put racing a delete of the same key', () => {
  it('ends stored or existed, and the delete true or false: never an error (2000 rounds)', async () => {
    const root = freshPath(base);
    const storage = new HashKeyStorage(root);
    const value = Buffer.from('written and deleted at once');
    const key = sha256(value);
    const outcomes = new Map<string, number>();
    const count = (what: string) => outcomes.set(what, (outcomes.get(what) ?? 0) + 1);
    for (let round = 0; round < 2000; round++) {
      // Two writers and two deleters, so that links, examinations and unlinks interleave.
      const settled = await Promise.allSettled([
        storage.write(value),
        storage.delete(key),
        storage.write(value),
        storage.delete(key),
      ]);
      for (const r of settled) {
        if (r.status === 'rejected') count(`error ${(r.reason as NodeJS.ErrnoException).code}`);
        else
          count(typeof r.value === 'boolean' ? `delete ${r.value}` : r.value === key ? 'write' : 'wrong key');
      }
    }
    expect([...outcomes.keys()].filter((o) => !['write', 'delete true', 'delete false'].includes(o))).toEqual(
      [],
    );
    expect(outcomes.get('write')).toBe(4000);
    expect(readdirSync(join(root, '.tmp'))).toEqual([]);
  });

  it('link says EEXIST, then the blob vanishes before it is examined: the publish is retried and stores it', async () => {
    const root = freshPath(base);
    // The general path (the one that uses fs/promises' link): a small value would be written synchronously.
    const lake = new DiskLocation(root, { syncWrites: false });
    const storage = new HashKeyStorage(lake);
    const value = Buffer.from('deleted between link and look');
    const key = await storage.write(value);
    const final = lake.pathOf(key);
    let links = 0;
    // The delete lands exactly in the window: after link(2) failed with EEXIST, before the blob is examined.
    const undo = hookFsPromises('link', (link) => async (from, to) => {
      links++;
      try {
        return await link(from, to);
      } catch (e) {
        if (links === 1 && to === final) unlinkSync(final);
        throw e;
      }
    });
    try {
      expect(await storage.write(value)).toBe(key);
    } finally {
      undo();
    }
    expect(links).toBe(2);
    expect(readFileSync(final).equals(value)).toBe(true);
    expect(readdirSync(join(root, '.tmp'))).toEqual([]);
  });
});
