import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { inCI } from '../bed/binaries.js';

/**
 * A fresh XFS with reflinks (`mkfs.xfs -m reflink=1` on a sparse image in the temp folder, mounted
 * through a loop device), unmounted and deleted after the file's tests: where a disk lake clones a
 * large file instead of writing it. Needs root and xfsprogs (scripts/provision.sh installs it);
 * elsewhere the tests that need it are skipped, loudly (in CI they fail).
 */
export function xfs(sizeMiB = 512): string | undefined {
  const dir = mkdtempSync(join(tmpdir(), 'tarn-xfs-'));
  const image = `${dir}.img`;
  const mount = join(dir, 'fs');
  try {
    execFileSync('truncate', ['-s', `${sizeMiB}M`, image], { stdio: 'pipe' });
    execFileSync('mkfs.xfs', ['-q', '-m', 'reflink=1', image], { stdio: 'pipe' });
    execFileSync('mkdir', [mount]);
    execFileSync('mount', ['-o', 'loop', image, mount], { stdio: 'pipe' });
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    rmSync(image, { force: true });
    if (inCI()) throw new Error(`cannot mount an XFS image for the reflink tests: ${(e as Error).message}`);
    console.warn(
      `skipping reflink tests: cannot mount an XFS image (${(e as Error).message.split('\n')[0]})`,
    );
    return undefined;
  }
  afterAll(() => {
    try {
      execFileSync('umount', [mount], { stdio: 'pipe' });
    } catch {
      execFileSync('umount', ['-l', mount], { stdio: 'pipe' });
    }
    rmSync(dir, { recursive: true, force: true });
    rmSync(image, { force: true });
  });
  return mount;
}
