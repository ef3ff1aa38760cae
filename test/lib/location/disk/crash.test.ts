import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DiskLocation, HashKeyStorage } from '@tarnjs/tarn';
import { describe, expect, it } from 'vitest';
import { pseudoRandom, sha256 } from '../../../helpers/data.js';
import { child } from '../../../helpers/spawn.js';
import { freshPath, tempDir } from '../../../helpers/tmp.js';

const base = tempDir();
const SIZE = 16 << 20;

describe('a writer killed with SIGKILL', () => {
  it('never leaves a partial blob visible, and its temp file is swept', async () => {
    const root = freshPath(base);
    new DiskLocation(root);
    const key = sha256(pseudoRandom('crash', SIZE));
    let completed = 0;
    for (let round = 0; round < 6; round++) {
      // 16 chunks of 1 MiB with a pause after each; killed after a different chunk each round.
      const proc = child('writer.mjs', [root, JSON.stringify([{ seed: 'crash', size: SIZE }]), '6']);
      const killAfter = 1 + round * 3;
      await new Promise<void>((resolve) => {
        let seen = '';
        proc.stderr?.on('data', (d: Buffer) => {
          seen += d.toString();
          if (seen.includes(`took ${killAfter}\n`)) resolve();
        });
      });
      // The write is under way: its temp file exists now, and holds the chunks taken so far.
      expect(readdirSync(join(root, '.tmp'))).toHaveLength(1);
      proc.kill('SIGKILL');
      await new Promise((r) => proc.on('close', r));
      // The kill landed mid-write: the temp file outlived its writer.
      expect(readdirSync(join(root, '.tmp'))).toHaveLength(1);
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
    // Every kill landed mid-write, so no round could complete.
    expect(completed).toBe(0);
    // And the lake is still fully usable.
    expect(await new HashKeyStorage(root).write(pseudoRandom('crash', SIZE))).toBe(key);
  }, 120_000);
});
