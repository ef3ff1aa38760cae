import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { HashKeyStorage, SidecarLocation } from '@tarnjs/tarn';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../helpers/spawn.js';
import { freshPath, tempDir } from '../../helpers/tmp.js';
import { type Sidecar, startSidecar } from '../../sidecar/serve-process.js';

const CHILD = fileURLToPath(new URL('../../helpers/children/memo-env.mjs', import.meta.url));
const dir = tempDir();

/**
 * Two pods on one node: two `tarn serve` processes, started as a user starts them, sharing one disk
 * lake (a hostPath), each with its own socket; apps talk to their pod's sidecar only.
 */
describe('two tarn serve processes sharing one lake', () => {
  let a: Sidecar;
  let b: Sidecar;
  const lake = join(dir, 'node-lake');
  beforeAll(async () => {
    [a, b] = await Promise.all([
      startSidecar(['--storage', lake, '--socket', join(dir, 'a.sock')]),
      startSidecar(['--storage', lake, '--socket', join(dir, 'b.sock')]),
    ]);
  });
  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
  });

  it('a value written through one is read through the other', async () => {
    const one = new SidecarLocation(a.socket);
    const other = new SidecarLocation(b.socket);
    try {
      const key = await new HashKeyStorage(one).write(Buffer.from('from pod a'));
      const value = await other.read(key);
      // Same volume, same path: the other pod's app opens the file itself.
      expect(value?.path?.startsWith(lake)).toBe(true);
      await value?.close();
      expect(await new HashKeyStorage(other).read(key, (v) => v.text(), { verify: true })).toBe('from pod a');
    } finally {
      await one.close();
      await other.close();
    }
  });

  it('smartCache() from four processes through two sidecars computes once', async () => {
    const CALLS = freshPath(dir, 'calls');
    const outcomes = await Promise.all(
      [a, b, a, b].map(async (s) => {
        const r = await run(process.execPath, [CHILD], {
          cwd: dir,
          env: { TARN_SIDECAR: s.socket, TARN_STORAGE: '', CALLS, SLOW: '500', X: '5' },
        });
        if (r.code !== 0) throw new Error(`memo-env.mjs failed (${r.code}): ${r.stderr}`);
        return JSON.parse(r.stdout) as { result: { square: number }; stats: { misses: number } };
      }),
    );
    expect(readFileSync(CALLS, 'utf8').trim().split('\n')).toHaveLength(1);
    expect(outcomes.map((o) => o.result.square)).toEqual([25, 25, 25, 25]);
    expect(outcomes.map((o) => o.stats.misses).sort()).toEqual([0, 0, 0, 1]);
  });
});
