import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pseudoRandom, sha256 } from '../helpers/data.js';
import { REPO, run } from '../helpers/spawn.js';
import { tempDir } from '../helpers/tmp.js';
import { type Sidecar, startSidecar } from './serve-process.js';

/** The Python example of docs/sidecar.md, exactly as printed there (the block after its marker). */
function example(): string {
  const doc = readFileSync(join(REPO, 'docs/sidecar.md'), 'utf8');
  const block = /<!-- python-example -->\n```python\n([\s\S]*?)\n```/.exec(doc);
  if (!block) throw new Error('docs/sidecar.md has no python example after <!-- python-example -->');
  return block[1] as string;
}

describe('the Python example of docs/sidecar.md (standard library only)', () => {
  const base = tempDir('tarn-python-');
  let sidecar: Sidecar;
  beforeAll(async () => {
    sidecar = await startSidecar(['--storage', join(base, 'lake'), '--socket', join(base, 'tarn.sock')]);
  });
  afterAll(async () => {
    await sidecar?.stop();
  });

  it('stores, reads, opens the zero-copy path, streams a file and gets a typed refusal', async () => {
    const script = join(base, 'example.py');
    writeFileSync(script, example());
    const file = join(base, 'data.bin');
    const data = pseudoRandom('python upload', 3 << 20);
    writeFileSync(file, data);
    const r = await run('python3', [script, file], { env: { TARN_SIDECAR: sidecar.socket } });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(
      `refused: TARN_KEY_MISMATCH\nstored: ${sha256('hello from python')} ${sha256(data)}\n`,
    );
  });
});
