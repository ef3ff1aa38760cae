import { randomBytes } from 'node:crypto';
import { constants, createWriteStream, open as openCb } from 'node:fs';
import { chmod, copyFile, lstat, open, readlink, rename, rm, stat } from 'node:fs/promises';
import { Socket } from 'node:net';
import { basename, dirname, join, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { AbortError, IoError, isSystemError, throwIfAborted } from '../errors.js';
import type { StoredValue } from '../stored-value.js';
import { Progress } from './progress.js';

const openFd = promisify(openCb);

/** Where `get -o` writes, once symbolic links are followed. */
type Target =
  /** A regular file, or nothing yet: written to a temp file beside it, then renamed over it. */
  | { kind: 'file'; path: string; mode: number | undefined }
  /** A FIFO or a character device: written through, never replaced. */
  | { kind: 'fifo' | 'device'; path: string };

/** The most links followed, as Linux's MAXSYMLINKS. */
const MAX_LINKS = 40;

/**
 * Writes a value to `target` without ever replacing what is not a regular file: a symbolic link is
 * followed and its final target written; a FIFO or a character device (a terminal, /dev/null) is
 * written through, as a shell's `>` would; a folder, a socket or a block device is refused. A regular
 * file (or a new one) is written to a temp name in its folder and renamed over it, so it is never
 * half-written, and keeps the mode it had.
 */
export async function saveTo(
  value: StoredValue,
  target: string,
  stderr: NodeJS.WriteStream,
  signal: AbortSignal,
): Promise<void> {
  const t = await resolveTarget(target);
  if (t.kind === 'file') return replaceFile(value, target, t.path, t.mode, stderr, signal);
  const fd = t.kind === 'fifo' ? await openFifo(target, t.path, signal) : await openDevice(target, t.path);
  // A FIFO's descriptor is non-blocking: a socket writes it from the event loop, and a reader that
  // stops reading cannot pin a thread of the pool. A device is written from the pool, like a file.
  const dest =
    t.kind === 'fifo'
      ? new Socket({ fd, readable: false, writable: true })
      : createWriteStream('', { fd, autoClose: true });
  await streamTo(value, dest, { verb: 'write', what: target }, stderr, signal);
}

/** Writes a value to stdout; a closed pipe (`tarn cat key | head`) is not an error. */
export async function toStdout(
  value: StoredValue,
  stdout: NodeJS.WritableStream,
  stderr: NodeJS.WriteStream,
  signal: AbortSignal,
): Promise<void> {
  try {
    await streamTo(value, stdout, { what: 'stdout' }, stderr, signal);
  } catch (e) {
    const errno = e instanceof IoError ? e.errno : (e as NodeJS.ErrnoException).code;
    if (errno !== 'EPIPE') throw e;
  }
}

async function resolveTarget(target: string): Promise<Target> {
  let path = target;
  for (let links = 0; links <= MAX_LINKS; links++) {
    let st: Awaited<ReturnType<typeof lstat>>;
    try {
      st = await lstat(path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT')
        throw IoError.from(e as NodeJS.ErrnoException, { verb: 'write', what: target });
      // A new file (or a dangling link's target, as `>` creates it): its folder must exist; we create no folders.
      const folder = dirname(path);
      const fst = await stat(folder).catch(() => undefined);
      if (!fst)
        throw new IoError(`cannot write ${target}: the folder ${folder} does not exist; create it first`, {
          errno: 'ENOENT',
          path: target,
        });
      return { kind: 'file', path, mode: undefined };
    }
    if (st.isSymbolicLink()) {
      path = resolve(dirname(path), await readlink(path));
      continue;
    }
    if (st.isFile()) return { kind: 'file', path, mode: st.mode & 0o7777 };
    if (st.isFIFO()) return { kind: 'fifo', path };
    if (st.isCharacterDevice()) return { kind: 'device', path };
    const [errno, what] = st.isDirectory()
      ? ['EISDIR', 'a folder; name a file in it']
      : st.isSocket()
        ? ['ENXIO', 'a socket']
        : ['ENOTSUP', `a block device; to overwrite it, say so: \`tarn cat <key> > ${target}\``];
    throw new IoError(`cannot write ${target}: it is ${what}`, { errno, path: target });
  }
  throw new IoError(`cannot write ${target}: more than ${MAX_LINKS} symbolic links to follow`, {
    errno: 'ELOOP',
    path: target,
  });
}

async function replaceFile(
  value: StoredValue,
  target: string,
  path: string,
  mode: number | undefined,
  stderr: NodeJS.WriteStream,
  signal: AbortSignal,
): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.tarn-${randomBytes(4).toString('hex')}`);
  // A new file gets what the umask allows, as `>` gives it; a replaced one keeps its mode.
  const newMode = mode ?? 0o666 & ~process.umask();
  let fh: Awaited<ReturnType<typeof open>>;
  try {
    fh = await open(tmp, 'wx', newMode);
  } catch (e) {
    throw IoError.from(e as NodeJS.ErrnoException, {
      verb: 'write',
      what: target,
      hint:
        (e as NodeJS.ErrnoException).code === 'EACCES' || (e as NodeJS.ErrnoException).code === 'EPERM'
          ? `check the permissions of its folder ${dirname(path)} (the value is written to a temp file there first)`
          : undefined,
    });
  }
  try {
    if (value.path) {
      await fh.close();
      // copy_file_range or a reflink: no bytes through this process. It copies the blob's read-only
      // mode too, hence the chmod.
      await copyFile(value.path, tmp);
      await chmod(tmp, newMode);
      // The copy cannot be interrupted; a Ctrl-C that came meanwhile must still leave the target alone.
      throwIfAborted(signal);
    } else {
      const out = fh.createWriteStream({ autoClose: false });
      await streamTo(value, out, { verb: 'write', what: target }, stderr, signal);
      await fh.close();
    }
    await rename(tmp, path);
  } catch (e) {
    await fh.close().catch(() => undefined);
    await rm(tmp, { force: true });
    if (isSystemError(e)) throw IoError.from(e, { verb: 'write', what: target });
    throw e;
  }
}

/**
 * Opens a FIFO for writing without blocking: O_NONBLOCK fails with ENXIO until a reader opens it,
 * so we retry on a timer, which a signal can stop. A blocking open would wait in a thread of the
 * pool, where neither Ctrl-C nor the signal can reach it.
 */
async function openFifo(target: string, path: string, signal: AbortSignal): Promise<number> {
  for (let wait = 5; ; wait = Math.min(wait * 2, 200)) {
    try {
      return await openFd(path, constants.O_WRONLY | constants.O_NONBLOCK);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENXIO')
        throw IoError.from(e as NodeJS.ErrnoException, { verb: 'write', what: target });
    }
    try {
      await sleep(wait, undefined, { signal });
    } catch {
      throw new AbortError(signal.reason);
    }
  }
}

/** Opens a character device for writing: no O_CREAT, no O_TRUNC, so it is written through, never replaced. */
async function openDevice(target: string, path: string): Promise<number> {
  try {
    return await openFd(path, constants.O_WRONLY);
  } catch (e) {
    throw IoError.from(e as NodeJS.ErrnoException, { verb: 'write', what: target });
  }
}

/**
 * Streams a value into `dest`, with a progress bar on a terminal. An OS error of `dest` (ENOSPC,
 * EPIPE, …) becomes an IoError naming it; errors of the source are left as they are.
 */
async function streamTo(
  value: StoredValue,
  dest: NodeJS.WritableStream,
  name: { verb?: string; what: string },
  stderr: NodeJS.WriteStream,
  signal: AbortSignal,
): Promise<void> {
  const bar = Progress.start(value.key.slice(0, 12), value.size, stderr);
  const source = value.stream({ signal });
  if (bar) {
    let n = 0;
    source.on('data', (c: Buffer) => {
      n += c.byteLength;
      bar.update(n);
    });
  }
  let destError: unknown;
  dest.once('error', (e) => {
    destError = e;
  });
  try {
    await pipeline(source, dest);
  } catch (e) {
    if (e === destError && isSystemError(e)) throw IoError.from(e, name);
    throw e;
  }
  bar?.done();
}
