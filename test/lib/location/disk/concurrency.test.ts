import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DiskLocation, HashKeyStorage } from '@tarnjs/tarn';
import { describe, expect, it } from 'vitest';
import { pseudoRandom, sha256 } from '../../../helpers/data.js';
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
