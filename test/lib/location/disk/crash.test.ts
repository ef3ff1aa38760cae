import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DiskLocation, HashKeyStorage } from '@tarnjs/tarn';
import { describe, expect, it } from 'vitest';
import { pseudoRandom, sha256 } from '../../../helpers/data.js';
import { child } from '../../../helpers/spawn.js';
import { freshPath, tempDir } from '../../../helpers/tmp.js';

const base = tempDir();
const SIZE = 48 << 20;

describe('a writer killed with SIGKILL', () => {
  it('never leaves a partial blob visible, and its temp file is swept', async () => {
    const root = freshPath(base);
    new DiskLocation(root);
    const key = sha256(pseudoRandom('crash', SIZE));
    let completed = 0;
    for (let round = 0; round < 6; round++) {
      // 48 chunks of 1 MiB with a pause after each: about 0.3 s of writing to kill into.
      const proc = child('writer.mjs', [root, JSON.stringify([{ seed: 'crash', size: SIZE }]), '6']);
      await new Promise((r) => setTimeout(r, 80 + round * 60));
      proc.kill('SIGKILL');
      await new Promise((r) => proc.on('close', r));
      const lake = new DiskLocation(root);
      const present = await lake.contains(key);
      if (present) {
        completed++;
        expect(sha256(readFileSync(lake.pathOf(key)))).toBe(key);
        await lake.delete(key);
      }
      // Nothing but the one key may ever be visible.
      const keys: string[] = [];
      for await (const k of lake.keys()) keys.push(k);
      expect(keys).toEqual([]);
      // The dead writer's temp file goes at the next sweep (or the next write's sweep).
      await lake.sweep();
      expect(readdirSync(join(root, '.tmp'))).toEqual([]);
    }
    // The test is only meaningful if most kills landed mid-write.
    expect(completed).toBeLessThan(6);
    // And the lake is still fully usable.
    expect(await new HashKeyStorage(root).write(pseudoRandom('crash', SIZE))).toBe(key);
  });
});
