import { constants } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import { Readable } from 'node:stream';
import type { Digest } from './digest.js';
import { throwIfAborted } from './errors.js';
import type { OpOptions, Value } from './location/contract.js';
import { CHUNK } from './util/chunks.js';
import { hashHandle } from './util/hash-file.js';

/**
 * A value that is a local file, read through the descriptor opened when it was found: a read
 * costs open + fstat + read + close, the same as a bare readFile, and a blob deleted meanwhile
 * stays readable until close().
 */
export class FileValue implements Value {
  private constructor(
    readonly path: string,
    readonly size: number,
    private readonly fh: FileHandle,
    private readonly onClose?: () => Promise<void>,
  ) {}

  /**
   * Opens a regular file; null when it does not exist or is no regular file. A folder is followed to
   * `<folder>/data` (Python tarn's legacy layout). A symlink as the last component is not followed and
   * a FIFO is not waited on (O_NOFOLLOW, O_NONBLOCK): both give null.
   */
  static async open(path: string, onClose?: () => Promise<void>): Promise<FileValue | null> {
    let fh: FileHandle;
    try {
      fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'ELOOP' || code === 'ENXIO') return null;
      throw e;
    }
    try {
      const st = await fh.stat();
      if (st.isFile()) return new FileValue(path, st.size, fh, onClose);
      await fh.close();
      return st.isDirectory() ? FileValue.open(`${path}/data`, onClose) : null;
    } catch (e) {
      await fh.close().catch(() => undefined);
      throw e;
    }
  }

  /** A value of a file the caller has opened and checked to be regular; the value owns the handle. */
  static fromHandle(path: string, size: number, fh: FileHandle, onClose?: () => Promise<void>): FileValue {
    return new FileValue(path, size, fh, onClose);
  }

  stream(options?: OpOptions): Readable {
    return this.#read(0, undefined, options);
  }

  /** Reads through the descriptor opened at lookup: a delete or a swap of the path meanwhile changes nothing. */
  range(start: number, end: number, options?: OpOptions): Readable {
    return this.#read(start, end, options);
  }

  #read(start: number, end: number | undefined, options?: OpOptions): Readable {
    // A 1 MiB buffer for a 1 KiB value would cost more than the read itself.
    const length = (end ?? this.size - 1) - start + 1;
    const highWaterMark = Math.min(CHUNK, Math.max(length, 16 << 10));
    const stream = this.fh.createReadStream({ start, end, highWaterMark, autoClose: false });
    const signal = options?.signal;
    if (signal) {
      const abort = () => stream.destroy(signal.reason);
      if (signal.aborted) abort();
      else signal.addEventListener('abort', abort, { once: true });
      stream.once('close', () => signal.removeEventListener('abort', abort));
    }
    return stream;
  }

  async bytes(): Promise<Buffer> {
    const buf = Buffer.allocUnsafe(this.size);
    let at = 0;
    while (at < this.size) {
      const { bytesRead } = await this.fh.read(buf, at, this.size - at, at);
      if (bytesRead === 0) break; // truncated under us: return what is there; verification catches it
      at += bytesRead;
    }
    return at === this.size ? buf : buf.subarray(0, at);
  }

  /**
   * Hashes through the descriptor opened at lookup, into reused buffers (no garbage per chunk), to
   * the end of the file as `stream()` reads it: bytes appended since lookup are hashed too.
   */
  hash(digest: Digest, options?: OpOptions): Promise<string> {
    return hashHandle(this.fh, digest, options?.signal);
  }

  async close(): Promise<void> {
    await this.fh.close().catch(() => undefined);
    await this.onClose?.();
  }
}

/**
 * A small local file read whole when it was found (see BlobFinder.readSmallSync): its path, and
 * its bytes in memory, so no descriptor is held and a delete meanwhile changes nothing.
 */
export class LoadedFileValue implements Value {
  constructor(
    readonly path: string,
    private readonly data: Buffer,
  ) {}

  get size(): number {
    return this.data.length;
  }

  stream(options?: OpOptions): Readable {
    return this.range(0, this.data.length - 1, options);
  }

  range(start: number, end: number, options?: OpOptions): Readable {
    const part = this.data.subarray(start, end + 1);
    const stream = new Readable({
      read() {
        if (part.length > 0) this.push(part);
        this.push(null);
      },
    });
    const signal = options?.signal;
    if (signal?.aborted) stream.destroy(signal.reason);
    return stream;
  }

  async bytes(options?: OpOptions): Promise<Buffer> {
    throwIfAborted(options?.signal);
    return this.data;
  }

  async close(): Promise<void> {}
}
