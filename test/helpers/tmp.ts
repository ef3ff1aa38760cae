import { execFileSync } from 'node:child_process';
import { closeSync, constants, mkdtempSync, openSync, rmSync } from 'node:fs';
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

/**
 * A FIFO in `base`, released after the file's tests: a reader stuck in a blocking open() of it (a
 * bug these FIFOs catch) would pin a thread of the worker's pool, or outlive the test; a writer's
 * open, once, releases it.
 */
export function fifoIn(base: string): string {
  const path = freshPath(base, 'fifo');
  execFileSync('mkfifo', [path]);
  afterAll(() => {
    try {
      closeSync(openSync(path, constants.O_WRONLY | constants.O_NONBLOCK));
    } catch {
      // no reader left: nothing to release
    }
  });
  return path;
}
