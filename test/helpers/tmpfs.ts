import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { inCI } from '../bed/binaries.js';

/**
 * A small tmpfs (`options` as for mount -o, e.g. `size=4m`) in a fresh folder, unmounted after the
 * file's tests: a filesystem we may fill up without harming the machine. Mounting needs root; where it
 * is not allowed the tests that need it are skipped, loudly (in CI they fail).
 */
export function tmpfs(options: string): string | undefined {
  const dir = mkdtempSync(join(tmpdir(), 'tarn-tmpfs-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', dir], { stdio: 'pipe' });
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    if (inCI()) throw new Error(`cannot mount a tmpfs for the full-disk tests: ${(e as Error).message}`);
    console.warn(`skipping full-disk tests: cannot mount a tmpfs (${(e as Error).message.split('\n')[0]})`);
    return undefined;
  }
  afterAll(() => {
    try {
      execFileSync('umount', [dir], { stdio: 'pipe' });
    } catch {
      // Something still holds a file there (a failed test's stream): detach it now, freed when closed.
      execFileSync('umount', ['-l', dir], { stdio: 'pipe' });
    }
    rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}
