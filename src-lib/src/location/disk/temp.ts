import { lstat, opendir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { HOST_TAG, isAlive, ownerOf } from '../../util/process.js';

export const TEMP_PREFIX = 'stage';

/**
 * Removes temp files that no writer will ever finish: those of dead processes on this host at
 * once, and any other (another host's, or Python tarn's) once untouched for `staleAfterMs`;
 * a live writer updates its file's mtime with every chunk. A live writer on this host is never
 * swept, however old its file.
 */
export async function sweepTemp(dir: string, staleAfterMs: number): Promise<number> {
  let removed = 0;
  let entries: Awaited<ReturnType<typeof opendir>>;
  try {
    entries = await opendir(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw e;
  }
  const now = Date.now();
  for await (const entry of entries) {
    const path = join(dir, entry.name);
    const owner = ownerOf(entry.name);
    let stale: boolean;
    if (owner && owner.host === HOST_TAG) {
      stale = owner.pid !== process.pid && !isAlive(owner.pid);
    } else {
      const st = await lstat(path).catch(() => undefined);
      stale = st !== undefined && now - st.mtimeMs > staleAfterMs;
    }
    if (stale) {
      try {
        await rm(path, { force: true, recursive: true });
        removed++;
      } catch (e) {
        // A lake this user may only read (verify still runs there): the owner's sweep removes it.
        const code = (e as NodeJS.ErrnoException).code;
        if (code !== 'EACCES' && code !== 'EPERM' && code !== 'EROFS') throw e;
      }
    }
  }
  return removed;
}
