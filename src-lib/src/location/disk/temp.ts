import { lstat, opendir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { ConfigError } from '../../errors.js';
import { HOST_TAG, isAlive, ownerOf } from '../../util/process.js';
import { isReadOnly } from './errno.js';

export const TEMP_PREFIX = 'stage';

/** Python tarn's temp names: the key's hex, then 8 random letters (`.tmp/<keyhex><a-z x 8>`). */
const PYTHON_TEMP = /^[0-9a-f]+[a-z]{8}$/;

/**
 * Removes temp files that no writer will ever finish: those of dead processes on this host at
 * once, and any other (another host's, or Python tarn's) once untouched for `staleAfterMs`;
 * a live writer updates its file's mtime with every chunk. A live writer on this host is never
 * swept, however old its file. Only names a writer of ours or of Python tarn's gives are touched,
 * and only in a real folder: a `.tmp` that is a link would make the sweep delete files elsewhere.
 */
export async function sweepTemp(dir: string, staleAfterMs: number): Promise<number> {
  const st = await lstat(dir).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return undefined;
    throw e;
  });
  if (!st) return 0;
  if (!st.isDirectory()) {
    throw new ConfigError(
      `${dir} is ${st.isSymbolicLink() ? 'a symbolic link' : 'not a folder'}; a lake never follows one out of itself: remove it (the lake recreates its .tmp)`,
    );
  }
  let removed = 0;
  const entries = await opendir(dir);
  const now = Date.now();
  for await (const entry of entries) {
    const path = join(dir, entry.name);
    const owner = ownerOf(entry.name);
    if (!owner && !PYTHON_TEMP.test(entry.name)) continue; // not a temp file: not ours to remove
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
        if (!isReadOnly(e)) throw e;
      }
    }
  }
  return removed;
}
