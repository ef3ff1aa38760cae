import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';

/** A fresh folder, removed after the file's tests (blobs are read-only, so force the removal). */
export function tempDir(prefix = 'tarn-test-', base = tmpdir()): string {
  const dir = mkdtempSync(join(base, prefix));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

let n = 0;
/** A not-yet-existing path inside a fresh folder. */
export function freshPath(base: string, name = 'lake'): string {
  n++;
  return join(base, `${name}-${n}`);
}
