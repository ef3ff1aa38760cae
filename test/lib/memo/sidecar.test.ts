import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DiskLocation, HashKeyStorage } from '@tarnjs/tarn';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../helpers/spawn.js';
import { freshPath, tempDir } from '../../helpers/tmp.js';
import { type InProcessSidecar, startSidecar } from '../location/sidecar/server.js';

const CHILD = fileURLToPath(new URL('../../helpers/children/memo-env.mjs', import.meta.url));
const dir = tempDir();

interface Outcome {
  result: { square: number; by: number };
  stats: { hits: number; misses: number; unavailable: number };
}

async function call(env: Record<string, string>): Promise<Outcome> {
  // No inherited TARN_* variable may decide for the child.
  const r = await run(process.execPath, [CHILD], {
    cwd: dir,
    env: { TARN_SIDECAR: '', TARN_STORAGE: '', ...env },
  });
  if (r.code !== 0) throw new Error(`memo-env.mjs failed (${r.code}): ${r.stderr}`);
  return JSON.parse(r.stdout);
}

const calls = (file: string) => {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').filter(Boolean).length;
  } catch {
    return 0;
  }
};

describe('smartCache() with no target', () => {
  let server: InProcessSidecar;
  let lake: string;
  beforeAll(async () => {
    lake = join(dir, 'pod-lake');
    server = await startSidecar(dir, new HashKeyStorage(new DiskLocation(lake)), { name: 'memo.sock' });
  });
  afterAll(() => server?.close());

  it('through TARN_SIDECAR: four processes at once compute once (the sidecar’s lease), then all hit', async () => {
    const CALLS = freshPath(dir, 'calls');
    const env = { TARN_SIDECAR: server.socket, CALLS, SLOW: '500', X: '12' };
    const outcomes = await Promise.all([1, 2, 3, 4].map(() => call(env)));
    expect(calls(CALLS)).toBe(1);
    const computer = Number(readFileSync(CALLS, 'utf8').trim());
    for (const o of outcomes) expect(o.result).toEqual({ square: 144, by: computer });
    expect(outcomes.map((o) => o.stats.misses).sort()).toEqual([0, 0, 0, 1]);
    expect(outcomes.every((o) => o.stats.unavailable === 0)).toBe(true);
    // A fifth process later: a hit from the sidecar's memo index (the lake's tools/memo).
    expect((await call(env)).stats).toMatchObject({ hits: 1, misses: 0 });
    expect(calls(CALLS)).toBe(1);
  });

  it('through TARN_SIDECAR naming a sidecar that is down: computes (and says so), never fails', async () => {
    const CALLS = freshPath(dir, 'calls');
    const outcome = await call({ TARN_SIDECAR: join(dir, 'gone.sock'), CALLS });
    expect(outcome.result.square).toBe(49);
    expect(outcome.stats.unavailable).toBeGreaterThan(0);
    expect(calls(CALLS)).toBe(1);
  });

  it('through TARN_STORAGE (a lake, as the CLI takes it), else ./.tarn', async () => {
    const CALLS = freshPath(dir, 'calls');
    const storage = join(dir, 'env-lake');
    expect((await call({ TARN_STORAGE: storage, CALLS })).stats.misses).toBe(1);
    expect((await call({ TARN_STORAGE: storage, CALLS })).stats.hits).toBe(1);
    expect(calls(CALLS)).toBe(1);
    // Nothing set: ./.tarn of the working folder.
    expect((await call({ CALLS })).stats.misses).toBe(1);
    expect((await call({ CALLS })).stats.hits).toBe(1);
    expect(new DiskLocation(join(dir, '.tarn'), { create: false }).root).toBe(join(dir, '.tarn'));
  });
});
