import {
  type BigIntStats,
  close as closeCb,
  closeSync,
  constants,
  fstat as fstatCb,
  fstatSync,
  open as openCb,
  openSync,
  read as readCb,
  readSync,
} from 'node:fs';
import { Socket } from 'node:net';
import { Readable } from 'node:stream';
import { isatty, ReadStream as TtyReadStream } from 'node:tty';
import { promisify } from 'node:util';
import { IoError, isSystemError, SourceError, throwIfAborted } from './errors.js';
import { CHUNK, coalesce } from './util/chunks.js';
import { localDevice, localPath, SYNC_MAX } from './util/local-fs.js';
import { BufferPool } from './util/recycle.js';

const openFd = promisify(openCb);
const closeFd = promisify(closeCb);
const readFd = promisify(readCb);
const fstatBig = (fd: number) =>
  new Promise<BigIntStats>((resolve, reject) =>
    fstatCb(fd, { bigint: true }, (e, st) => (e ? reject(e) : resolve(st))),
  );

/** Everything `HashKeyStorage.write` accepts. A string is a file path. */
export type WriteSource =
  | string
  | Uint8Array
  | Readable
  | ReadableStream<Uint8Array>
  | AsyncIterable<Uint8Array>;

export interface OpenedSource {
  /** The whole value, when it is already in memory. */
  readonly whole?: Uint8Array;
  /** Exact size, when known before reading. */
  readonly size?: number;
  /** True when the bytes can be read again from the start (a file or a buffer). */
  readonly replayable: boolean;
  readonly chunks: AsyncIterator<Uint8Array>;
  close(): Promise<void>;
}

export async function openSource(source: WriteSource, signal?: AbortSignal): Promise<OpenedSource> {
  if (source instanceof Uint8Array) return inMemory(source);
  if (typeof source === 'string') return openFile(source, signal);
  let readable: Readable | undefined;
  if (source instanceof Readable) {
    readable = source;
  } else if (isWebStream(source)) {
    readable = Readable.fromWeb(source as import('node:stream/web').ReadableStream);
  } else if (!(source && typeof (source as AsyncIterable<Uint8Array>)[Symbol.asyncIterator] === 'function')) {
    throw new SourceError(
      'unsupported source: pass a file path, a Buffer/Uint8Array, a Readable, a web ReadableStream or an AsyncIterable of Uint8Array',
    );
  }
  return streamed(readable ?? (source as AsyncIterable<Uint8Array>));
}

/** Bytes in memory: sized, replayable, one chunk. */
function inMemory(bytes: Uint8Array): OpenedSource {
  return {
    whole: bytes,
    size: bytes.byteLength,
    replayable: true,
    chunks: (async function* () {
      yield bytes;
    })(),
    close: async () => undefined,
  };
}

/** A source read once, front to back: size unknown, not replayable. */
function streamed(source: AsyncIterable<Uint8Array>): OpenedSource {
  const readable = source instanceof Readable ? source : undefined;
  // Node streams hand out fresh buffers, pipes in 64 KiB pieces: coalesce them into ~1 MiB chunks.
  const chunks = coalesce(source)[Symbol.asyncIterator]();
  return {
    replayable: false,
    chunks,
    close: async () => {
      // Destroy first: a read may still be pending (an abort), and return() would wait for it.
      if (readable && !readable.destroyed) readable.destroy();
      // A plain iterable cannot be interrupted; its return() runs when its pending step settles.
      chunks.return(undefined).catch(() => undefined);
    },
  };
}

function isWebStream(x: unknown): x is ReadableStream<Uint8Array> {
  return typeof x === 'object' && x !== null && typeof (x as ReadableStream).getReader === 'function';
}

/**
 * Opens a path. O_NONBLOCK, because opening a FIFO without it waits for a writer inside a thread of
 * libuv's pool, where neither an AbortSignal nor Ctrl-C can reach it; regular files ignore the flag,
 * so their path costs nothing more. What the descriptor turns out to be decides how it is read:
 * - a regular file: positional reads of the size it had at open, checked at the end (readRegular);
 * - a FIFO (`<(cmd)`, `/dev/stdin` on a pipe, `mkfifo`): a socket on the descriptor, so the event
 *   loop waits for its writer and its bytes, and closing the socket ends the wait;
 * - a terminal: a tty stream, for the same reason;
 * - another device (/dev/null, a disk): read front to back. None of these is replayable or sized.
 */
async function openFile(path: string, signal?: AbortSignal): Promise<OpenedSource> {
  // A path under a local mount is opened on the calling thread, and a small regular file read whole
  // there (see openLocal): a few syscalls of microseconds instead of five pool round trips.
  const quick = localPath(path) ? openLocal(path) : undefined;
  if (quick && 'chunks' in quick) return quick;
  let fd: number;
  let st: BigIntStats;
  if (quick) {
    ({ fd, st } = quick);
  } else {
    try {
      fd = await openFd(path, OPEN_FLAGS);
    } catch (e) {
      throw openError(e, path);
    }
    try {
      st = await fstatBig(fd);
    } catch (e) {
      await closeFd(fd).catch(() => undefined);
      throw e;
    }
  }
  try {
    if (st.isFile()) {
      const chunks = readRegular(fd, path, st, signal);
      return {
        size: Number(st.size),
        replayable: true,
        chunks,
        close: async () => {
          await chunks.return(undefined);
          await closeFd(fd);
        },
      };
    }
    if (st.isDirectory()) throw new SourceError(`${path} is a directory; tarn stores files`);
    // From here on a stream owns the descriptor and closes it.
    if (st.isFIFO() || st.isSocket()) return streamed(new Socket({ fd, readable: true, writable: false }));
    if (isatty(fd)) return streamed(new TtyReadStream(fd));
    return streamed(createDeviceStream(fd));
  } catch (e) {
    await closeFd(fd).catch(() => undefined);
    throw e;
  }
}

const OPEN_FLAGS = constants.O_RDONLY | (constants.O_NONBLOCK ?? 0);

function openError(e: unknown, path: string): SourceError {
  return new SourceError(
    isSystemError(e)
      ? IoError.from(e, { what: path }).message
      : `cannot open ${path}: ${(e as Error).message}`,
    { cause: e },
  );
}

function changedError(path: string, what: string): SourceError {
  return new SourceError(
    `${path} changed while it was read (${what}); nothing was stored; put it again once nothing writes to it`,
  );
}

/**
 * The synchronous open of a path that lies under a local mount (util/local-fs.ts): the bytes of a
 * small regular file on a local device, read whole with the same checks as readRegular (one read
 * past the size seen at open finds growth, an fstat at the end a rewrite); or, for anything else,
 * the open descriptor and its fstat for the general path. A symbolic link on the way may have led
 * to another filesystem, so nothing but the open and an fstat (answered from the attributes the
 * open fetched) is done before the device is known to be local.
 */
function openLocal(path: string): OpenedSource | { fd: number; st: BigIntStats } {
  let fd: number;
  try {
    fd = openSync(path, OPEN_FLAGS);
  } catch (e) {
    throw openError(e, path);
  }
  let handed = false;
  try {
    const st = fstatSync(fd, { bigint: true });
    if (!st.isFile() || st.size > BigInt(SYNC_MAX) || !localDevice(st.dev)) {
      handed = true;
      return { fd, st };
    }
    const size = Number(st.size);
    const buf = Buffer.allocUnsafe(size + 1);
    let at = 0;
    for (;;) {
      const n = readSync(fd, buf, at, size + 1 - at, at);
      if (n === 0) break;
      at += n;
      if (at > size) throw changedError(path, `it grew past the ${size} bytes it had when opened`);
    }
    if (at < size) throw changedError(path, `${size} bytes when opened, ${at} when read`);
    const end = fstatSync(fd, { bigint: true });
    if (end.size !== st.size || end.mtimeNs !== st.mtimeNs)
      throw changedError(path, 'it was modified during the read');
    return inMemory(buf.subarray(0, size));
  } catch (e) {
    if (e instanceof SourceError) throw e;
    throw new SourceError(`reading ${path} failed: ${(e as Error).message}`, { cause: e });
  } finally {
    if (!handed) closeSync(fd);
  }
}

/** Sequential reads of a device in the thread pool, 1 MiB at a time. */
function createDeviceStream(fd: number): Readable {
  return Readable.from(
    (async function* () {
      try {
        for (;;) {
          const { bytesRead, buffer } = await readFd(fd, Buffer.allocUnsafe(CHUNK), 0, CHUNK, null);
          if (bytesRead === 0) return;
          yield buffer.subarray(0, bytesRead);
        }
      } finally {
        await closeFd(fd);
      }
    })(),
    { objectMode: false },
  );
}

/**
 * Reads a regular file in 1 MiB chunks with one read always in flight ahead of the consumer, so disk
 * reads overlap with hashing and writing. The bytes hashed must be one state of the file: a file
 * that shrinks, grows or is rewritten while it is read fails with SourceError (nothing is stored),
 * where it would otherwise be stored as a prefix, or as a mix of two versions. Reads stop one byte
 * past the size seen at open, so the read that finds the end is also the check that nothing was
 * appended (no read is added); one fstat at the end compares size and modification time with those
 * at open. A rewrite within one tick of a coarse filesystem clock can go unseen: that is the limit
 * of what a reader can check without locks.
 */
async function* readRegular(
  fd: number,
  path: string,
  atOpen: BigIntStats,
  signal?: AbortSignal,
): AsyncGenerator<Buffer> {
  const size = Number(atOpen.size);
  const limit = size + 1;
  let position = 0;
  // Lent chunks: a disk stage hands each back once written (util/recycle.ts).
  const pool = new BufferPool(CHUNK);
  const readAt = (pos: number) => {
    const n = Math.min(CHUNK, limit - pos);
    return readFd(fd, pool.take(n), 0, n, pos);
  };
  const changed = (what: string) => changedError(path, what);
  let next = readAt(position);
  try {
    for (;;) {
      const { bytesRead, buffer } = await next;
      if (bytesRead === 0) break;
      position += bytesRead;
      if (position > size) throw changed(`it grew past the ${size} bytes it had when opened`);
      throwIfAborted(signal);
      next = readAt(position);
      yield bytesRead === buffer.byteLength ? buffer : buffer.subarray(0, bytesRead);
    }
    if (position < size) throw changed(`${size} bytes when opened, ${position} when read`);
    const atEnd = await fstatBig(fd);
    if (atEnd.size !== atOpen.size || atEnd.mtimeNs !== atOpen.mtimeNs)
      throw changed('it was modified during the read');
  } finally {
    // An early return leaves the read-ahead in flight; it must settle before the descriptor closes.
    await next.catch(() => undefined);
  }
}
