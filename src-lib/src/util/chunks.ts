import type { FileHandle } from 'node:fs/promises';
import { throwIfAborted } from '../errors.js';

/** 1 MiB: measured on this class of machine, 64 KiB chunks cost a third of the hashing throughput. */
export const CHUNK = 1 << 20;

/**
 * Reads a file in 1 MiB chunks with one read always in flight ahead of the consumer,
 * so disk reads overlap with hashing and writing. Each chunk is a fresh buffer.
 */
export async function* readChunks(
  fh: FileHandle,
  signal?: AbortSignal,
  limit = Number.POSITIVE_INFINITY,
): AsyncGenerator<Buffer> {
  let position = 0;
  const readAt = (pos: number) => {
    const n = Math.min(CHUNK, limit - pos);
    return n <= 0
      ? Promise.resolve({ bytesRead: 0, buffer: Buffer.alloc(0) })
      : fh.read(Buffer.allocUnsafe(n), 0, n, pos);
  };
  let next = readAt(position);
  try {
    for (;;) {
      const { bytesRead, buffer } = await next;
      if (bytesRead === 0) return;
      position += bytesRead;
      throwIfAborted(signal);
      next = readAt(position);
      yield bytesRead === buffer.byteLength ? buffer : buffer.subarray(0, bytesRead);
    }
  } finally {
    // An early return leaves the read-ahead in flight; it must settle before the handle closes.
    await next.catch(() => undefined);
  }
}

/**
 * Groups small chunks (pipes deliver 64 KiB) into ~1 MiB buffers so that each write to a
 * location carries enough bytes to amortise its cost. Copies, so a producer that reuses its
 * buffers cannot change bytes that were already hashed.
 */
export async function* coalesce(source: AsyncIterable<Uint8Array>): AsyncGenerator<Buffer> {
  let parts: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of source) {
    if (!(chunk instanceof Uint8Array)) {
      throw new TypeError(`a source chunk is ${typeof chunk}, not bytes; open streams without an encoding`);
    }
    if (chunk.byteLength === 0) continue;
    parts.push(chunk);
    size += chunk.byteLength;
    if (size >= CHUNK) {
      yield Buffer.concat(parts, size);
      parts = [];
      size = 0;
    }
  }
  if (size > 0) yield Buffer.concat(parts, size);
}

/** Writes all of `chunk` (a write may be short), at `at` when given, else at the file's position. */
export async function writeFully(fh: FileHandle, chunk: Uint8Array, at?: number): Promise<void> {
  let done = 0;
  while (done < chunk.byteLength) {
    const { bytesWritten } = await fh.write(
      chunk,
      done,
      chunk.byteLength - done,
      at === undefined ? null : at + done,
    );
    done += bytesWritten;
  }
}
