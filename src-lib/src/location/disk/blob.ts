import {
  closeSync,
  constants,
  type Dirent,
  fstatSync,
  lstatSync,
  openSync,
  readlinkSync,
  readSync,
  realpathSync,
  type Stats,
} from 'node:fs';
import { type FileHandle, lstat, open, opendir } from 'node:fs/promises';
import { join, sep } from 'node:path';
import { throwIfAborted } from '../../errors.js';
import type { ForeignEntry, ForeignReason } from '../contract.js';
import { isComponent, type Levels } from './layout.js';

/**
 * The lake's rule for what it finds on disk: a blob is a regular file (or Python's legacy
 * `<key>/data`), reached through real folders. A lake never follows a symbolic link out of itself,
 * and never opens a FIFO, socket or device node (opening a FIFO for reading blocks until a writer
 * comes, and opening a device can have effects). Anything else at a blob's or a folder's position is
 * foreign: not a value, reported by `verify`, moved aside by a write of its key.
 */
export type { ForeignEntry, ForeignReason };

/** What sits at a key's position. */
export type Found =
  | { kind: 'blob'; path: string; size: number }
  | { kind: 'foreign'; entry: ForeignEntry }
  | { kind: 'missing' };

const MISSING: Found = { kind: 'missing' };

/** How a blob is opened for reading: O_NOFOLLOW refuses a link, O_NONBLOCK never waits on a FIFO. */
const OPEN_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;

/** A small blob read whole at lookup, on the calling thread (`BlobFinder.readSmallSync`). */
export interface SmallBlob {
  path: string;
  bytes: Buffer;
}

export function reasonOf(st: Stats | Dirent): ForeignReason {
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isFIFO()) return 'fifo';
  if (st.isSocket()) return 'socket';
  if (st.isBlockDevice() || st.isCharacterDevice()) return 'device';
  return st.isDirectory() ? 'folder' : 'file';
}

/** Nothing there: missing, a file on the way, or a loop of links on the way (reported by the walk). */
const gone = (e: unknown) => {
  const code = (e as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR' || code === 'ELOOP';
};

async function lstatOrUndefined(path: string): Promise<Stats | undefined> {
  try {
    return await lstat(path);
  } catch (e) {
    if (gone(e)) return undefined;
    throw e;
  }
}

/**
 * `join(root, ...parts.slice(0, depth))` without its normalising pass: the root is resolved and the
 * parts are validated key components (keyToParts), so plain concatenation gives the same path. It
 * runs several times per operation.
 */
export function under(root: string, parts: readonly string[], depth = parts.length): string {
  let path = root.endsWith(sep) ? root.slice(0, -1) : root;
  for (let i = 0; i < depth; i++) path += sep + parts[i];
  return path;
}

function lstatSyncOrUndefined(path: string): Stats | undefined {
  try {
    // throwIfNoEntry: a miss (the usual answer for a new value) builds no Error with a stack trace,
    // which cost more than the lstat itself.
    return lstatSync(path, { throwIfNoEntry: false });
  } catch (e) {
    if (gone(e)) return undefined;
    throw e;
  }
}

/**
 * The lake's rule for what sits at a key's position, written once as the paths it needs to lstat:
 * each `yield` asks for one lstat (undefined when nothing is there) and a driver answers it, on the
 * thread pool (lstatsAsync) or on the calling thread (lstatsSync).
 */
type Steps<T> = Generator<string, T, Stats | undefined>;

function* findSteps(root: string, parts: readonly string[]): Steps<Found> {
  const path = under(root, parts);
  const st = yield path;
  if (!st) return MISSING;
  let found: Found;
  if (st.isFile()) {
    found = { kind: 'blob', path, size: st.size };
  } else if (st.isDirectory()) {
    // Python tarn's legacy layout: <key>/data.
    const data = join(path, 'data');
    const dt = yield data;
    if (dt?.isFile()) found = { kind: 'blob', path: data, size: dt.size };
    else
      found = {
        kind: 'foreign',
        entry: dt ? { path: data, reason: reasonOf(dt) } : { path, reason: 'folder' },
      };
  } else {
    found = { kind: 'foreign', entry: { path, reason: reasonOf(st) } };
  }
  // Only a hit pays for this: a miss is a single lstat.
  return (yield* foreignFolderSteps(root, parts)) ?? found;
}

function* foreignFolderSteps(root: string, parts: readonly string[]): Steps<Found | undefined> {
  for (let depth = 1; depth < parts.length; depth++) {
    const folder = under(root, parts, depth);
    const st = yield folder;
    if (!st) return MISSING;
    if (!st.isDirectory()) return { kind: 'foreign', entry: { path: folder, reason: reasonOf(st) } };
  }
  return undefined;
}

async function lstatsAsync<T>(steps: Steps<T>): Promise<T> {
  for (let step = steps.next(); ; ) {
    if (step.done) return step.value;
    step = steps.next(await lstatOrUndefined(step.value));
  }
}

function lstatsSync<T>(steps: Steps<T>): T {
  for (let step = steps.next(); ; ) {
    if (step.done) return step.value;
    step = steps.next(lstatSyncOrUndefined(step.value));
  }
}

/**
 * A lake's view of its own files. `parts` are a key's path components below the root (see
 * keyToParts); the last one is the blob's name.
 */
export class BlobFinder {
  readonly #root: string;
  /**
   * The root's real path when /proc/self/fd tells where an open descriptor leads (Linux): then one
   * readlink proves that an opened blob was reached through no link, with no window for a swap.
   * Elsewhere the folders above a blob are checked with lstat before it is opened.
   */
  #realRoot: string | undefined;

  constructor(root: string) {
    this.#root = root;
    this.#realRoot = procRealRoot(root);
  }

  /** What sits at a key's position, never following a link: lstat of the entry, then of the folders above it. */
  find(parts: readonly string[]): Promise<Found> {
    return lstatsAsync(findSteps(this.#root, parts));
  }

  /**
   * `find` with synchronous lstats on the calling thread (one on a miss, two on a hit for the usual
   * [1, -1] layout): only for a lake on a local filesystem (DiskOptions.syncReads).
   */
  findSync(parts: readonly string[]): Found {
    return lstatsSync(findSteps(this.#root, parts));
  }

  /**
   * The first folder above a key's blob that is not a real folder (a symlink to elsewhere, a file),
   * as a foreign entry; undefined when they all are, or when one is missing.
   */
  foreignFolder(parts: readonly string[]): Promise<Found | undefined> {
    return lstatsAsync(foreignFolderSteps(this.#root, parts));
  }

  /** `foreignFolder` with synchronous lstats (see findSync). */
  foreignFolderSync(parts: readonly string[]): Found | undefined {
    return lstatsSync(foreignFolderSteps(this.#root, parts));
  }

  /**
   * Opens a key's blob for reading, or null when there is none (missing, or foreign). No lstat
   * first (a round trip to the thread pool on every read): O_NOFOLLOW refuses a link at the blob's
   * place (ELOOP), O_NONBLOCK makes a FIFO open at once instead of waiting for a writer, a socket
   * fails to open (ENXIO), and fstat then refuses anything but a regular file before a byte is read.
   * A device node there (only root can make one) is opened and closed unread.
   */
  async open(parts: readonly string[]): Promise<{ path: string; size: number; fh: FileHandle } | null> {
    let path = under(this.#root, parts);
    for (let legacy = false; ; legacy = true) {
      let fh: FileHandle;
      try {
        fh = await open(path, OPEN_FLAGS);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (gone(e) || code === 'ENXIO') return null; // missing, a link, or a socket
        throw e;
      }
      try {
        const st = await fh.stat();
        if (st.isFile() && (await this.#reachedDirectly(fh.fd, path, parts)))
          return { path, size: st.size, fh };
        await fh.close();
        // Python tarn's legacy layout: <key>/data, one level down, once.
        if (!st.isDirectory() || legacy) return null;
        path = join(path, 'data');
      } catch (e) {
        await fh.close().catch(() => undefined);
        throw e;
      }
    }
  }

  /**
   * A blob of at most `max` bytes read whole, on the calling thread: open (O_NOFOLLOW|O_NONBLOCK),
   * fstat, the /proc/self/fd check, one read, close, each a syscall of a few microseconds on a
   * local filesystem, where the thread pool costs ~30 µs per round trip and more in main-thread
   * work (promises, FileHandle) than the syscall itself. Null: none there (missing or foreign).
   * `undefined`: not answered here (bigger than `max`, or no /proc to ask): use `open`. Same rules
   * as `open`; the bytes are read before the descriptor is closed, so a delete meanwhile changes
   * nothing. It blocks the event loop for as long as the filesystem takes: the lake only calls it
   * on a local filesystem (see DiskOptions.syncReads).
   */
  readSmallSync(parts: readonly string[], max: number): SmallBlob | null | undefined {
    if (this.#realRoot === undefined) return undefined;
    let path = under(this.#root, parts);
    for (let legacy = false; ; legacy = true) {
      let fd: number;
      try {
        fd = openSync(path, OPEN_FLAGS);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (gone(e) || code === 'ENXIO') return null;
        throw e;
      }
      try {
        const st = fstatSync(fd);
        if (st.isFile()) {
          // A larger blob is opened again by `open`: no /proc check here that it would repeat.
          if (st.size > max) return undefined;
          const direct = this.#reachedDirectlySync(fd, path);
          if (direct === undefined) return undefined;
          if (!direct) return null;
          return { path, bytes: readWhole(fd, st.size) };
        }
        // Python tarn's legacy layout: <key>/data, one level down, once.
        if (!st.isDirectory() || legacy) return null;
        path = join(path, 'data');
      } finally {
        closeSync(fd);
      }
    }
  }

  /** Whether the open file is the one at `path` inside the lake, reached through no symlinked folder. */
  async #reachedDirectly(fd: number, path: string, parts: readonly string[]): Promise<boolean> {
    return this.#reachedDirectlySync(fd, path) ?? (await this.foreignFolder(parts)) === undefined;
  }

  /** The /proc/self/fd answer to #reachedDirectly; undefined when /proc cannot tell. */
  #reachedDirectlySync(fd: number, path: string): boolean | undefined {
    if (this.#realRoot === undefined) return undefined;
    let actual: string;
    try {
      // Synchronous on purpose: /proc answers from memory, never waiting on a disk, and a trip
      // through the thread pool would cost more than the call.
      actual = readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      return undefined;
    }
    // A blob deleted since it was opened stays readable until closed, as any open blob does.
    if (actual.endsWith(' (deleted)')) actual = actual.slice(0, -' (deleted)'.length);
    if (actual === this.#realRoot + path.slice(this.#root.length)) return true;
    // The root itself may be a link that was pointed elsewhere since (`current -> lake-v2`): look
    // again once, so a long-lived lake follows its root as its other operations do.
    const now = procRealRoot(this.#root);
    if (now === undefined || now === this.#realRoot) return false;
    this.#realRoot = now;
    return actual === now + path.slice(this.#root.length);
  }

  /**
   * Every key of the lake and every foreign entry, in one walk over the folders (directory entries
   * carry their type, so only legacy `<key>/` folders cost an lstat).
   */
  async *walk(
    levels: Levels,
    signal?: AbortSignal,
  ): AsyncGenerator<{ key: string; foreign?: undefined } | { key?: undefined; foreign: ForeignEntry }> {
    const last = levels.length - 1;
    const root = this.#root;
    const walk = async function* (
      folder: string,
      depth: number,
      prefix: string,
    ): AsyncGenerator<{ key: string } | { foreign: ForeignEntry }> {
      let entries: Awaited<ReturnType<typeof opendir>>;
      try {
        entries = await opendir(folder);
      } catch (e) {
        if (gone(e)) return;
        throw e;
      }
      for await (const e of entries) {
        throwIfAborted(signal);
        if (!isComponent(e.name, levels, depth)) continue;
        const path = join(folder, e.name);
        if (depth < last) {
          if (e.isDirectory()) yield* walk(path, depth + 1, prefix + e.name);
          else yield { foreign: { path, reason: reasonOf(e) } };
        } else if (e.isFile()) {
          yield { key: prefix + e.name };
        } else if (e.isDirectory()) {
          const data = join(path, 'data');
          const dt = await lstatOrUndefined(data);
          if (dt?.isFile()) yield { key: prefix + e.name };
          else yield { foreign: dt ? { path: data, reason: reasonOf(dt) } : { path, reason: 'folder' } };
        } else {
          yield { foreign: { path, reason: reasonOf(e) } };
        }
      }
    };
    yield* walk(root, 0, '');
  }
}

/** `size` bytes from the start of an open file (fewer if it was truncated meanwhile). */
function readWhole(fd: number, size: number): Buffer {
  const buf = Buffer.allocUnsafe(size);
  let at = 0;
  while (at < size) {
    const n = readSync(fd, buf, at, size - at, at);
    if (n === 0) break; // truncated under us: what is there; verification catches it
    at += n;
  }
  return at === size ? buf : buf.subarray(0, at);
}

/** The root's real path if /proc/self/fd shows it for a descriptor of it, else undefined. */
function procRealRoot(root: string): string | undefined {
  let fd: number | undefined;
  try {
    const real = realpathSync(root);
    fd = openSync(root, constants.O_RDONLY | constants.O_DIRECTORY);
    return readlinkSync(`/proc/self/fd/${fd}`) === real ? real : undefined;
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
