import { constants } from 'node:fs';
import { open, readlink, realpath } from 'node:fs/promises';
import { isAbsolute, relative, resolve, sep } from 'node:path';
import { ForbiddenError, isSystemError } from '@tarnjs/tarn';
import { HEADERS } from '@tarnjs/tarn/sidecar-api';
import { withHeaders } from './plugins/problem.js';

/** A client's file, opened by the sidecar: read it through `path` (this process's name for it). */
export interface SharedFile {
  /** `/proc/self/fd/N`: the opened file itself, whatever happens to its name meanwhile. */
  readonly path: string;
  close(): Promise<void>;
}

/**
 * Opens a file that a client of the socket asks the sidecar to store by path (POST
 * /v1/blobs/ingest). The client is another container of the pod; the file is on a volume both
 * mount. The sidecar reads with its own rights, so it reads only what was meant to be shared:
 *
 * 1. refuse at once when no folder is allowed (ingest is off), or the path, as written, is
 *    outside every allowed folder (nothing outside them is ever opened: no FIFO, no device);
 * 2. open it without following a link in its last component (O_NOFOLLOW), without waiting on a
 *    FIFO (O_NONBLOCK), never as a controlling terminal;
 * 3. refuse anything but a regular file;
 * 4. ask the kernel where the opened file really is (/proc/self/fd) and refuse it unless that is
 *    inside an allowed folder (each resolved now, links and all): a link in a middle component,
 *    or a folder swapped for a link between the check and the open, lands outside and is refused;
 * 5. hand out /proc/self/fd/N, so the bytes read are those of the file that was checked.
 *
 * Every refusal is a ForbiddenError (403), so that the client streams the file instead.
 */
export async function openShared(path: string, roots: readonly string[]): Promise<SharedFile> {
  if (roots.length === 0 || process.platform !== 'linux')
    throw withHeaders(
      new ForbiddenError(
        roots.length === 0
          ? 'this sidecar ingests no files (no serve.ingestRoots, no --ingest-root); stream the bytes with PUT /v1/blobs'
          : 'ingest by path needs Linux (/proc/self/fd); stream the bytes with PUT /v1/blobs',
      ),
      { [HEADERS.ingest]: 'off' },
    );
  if (!isAbsolute(path) || !roots.some((root) => inside(resolve(path), root)))
    throw new ForbiddenError(`${path} is not in a folder this sidecar ingests from (${roots.join(', ')})`);

  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(
      path,
      constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK | constants.O_NOCTTY,
    );
  } catch (e) {
    throw new ForbiddenError(`the sidecar cannot open ${path}: ${reasonOf(e)}`, { cause: e });
  }
  try {
    const st = await handle.stat();
    if (!st.isFile()) throw new ForbiddenError(`${path} is not a regular file`);
    const fdPath = `/proc/self/fd/${handle.fd}`;
    const real = await readlink(fdPath);
    const realRoots = await Promise.all(roots.map((r) => realpath(r).catch(() => undefined)));
    if (!realRoots.some((root) => root !== undefined && inside(real, root)))
      throw new ForbiddenError(`${path} leads outside the folders this sidecar ingests from`);
    return { path: fdPath, close: () => handle.close() };
  } catch (e) {
    await handle.close();
    throw e;
  }
}

/** True when `path` is `root` or below it (both absolute and normalised). */
function inside(path: string, root: string): boolean {
  const rel = relative(root, path);
  return rel !== '' && !rel.startsWith(`..${sep}`) && rel !== '..' && !isAbsolute(rel);
}

function reasonOf(e: unknown): string {
  if (!isSystemError(e)) return (e as Error).message;
  switch (e.code) {
    case 'ELOOP':
      return 'it is a symbolic link';
    case 'ENOENT':
      return 'no such file here (is the folder mounted at the same path in both containers?)';
    case 'EACCES':
    case 'EPERM':
      return "the sidecar's user may not read it";
    default:
      return e.code ?? e.message;
  }
}
