import type { FileHandle } from 'node:fs/promises';
import type { Digest } from '../digest.js';
import { throwIfAborted } from '../errors.js';
import { CHUNK } from './chunks.js';

/** Buffers in the ring: two reads in flight while the third is hashed. */
const RING = 3;

/**
 * The hex digest of a file's bytes (of its first `limit` bytes), read through its descriptor.
 *
 * Nothing but the hash sees the bytes, so the same three 1 MiB buffers are read into again and
 * again. Fresh buffers per chunk (`readChunks`) are memory outside V8's heap, and V8 answers every
 * ~32 MiB of it with a full mark of the heap on the main thread: for a 1 GiB file in a process that
 * has the library loaded (a 10 MiB heap) that measured 0.3 s of 1.1 s, and it grows with the
 * application's heap. With the ring, hashing a cached GiB takes what the hash takes (0.72 s here,
 * `openssl dgst` 0.87 s), two reads always in flight in the thread pool while a chunk is hashed.
 */
export async function hashHandle(
  fh: FileHandle,
  digest: Digest,
  options: { signal?: AbortSignal; limit?: number } = {},
): Promise<string> {
  const { signal, limit = Number.POSITIVE_INFINITY } = options;
  const h = digest.create();
  const ring = Array.from({ length: RING }, () => Buffer.allocUnsafeSlow(CHUNK));
  const inFlight: Array<Promise<number>> = [];
  let next = 0; // the position of the next read
  let issued = 0; // reads issued, so the ring slot of each
  const issue = () => {
    const n = Math.min(CHUNK, limit - next);
    const buf = ring[issued++ % RING] as Buffer;
    inFlight.push(n <= 0 ? Promise.resolve(0) : fh.read(buf, 0, n, next).then((r) => r.bytesRead));
    next += Math.max(n, 0);
  };
  try {
    for (let i = 0; i < RING - 1; i++) issue();
    for (let slot = 0; ; slot++) {
      const bytes = await (inFlight.shift() as Promise<number>);
      if (bytes === 0) break;
      throwIfAborted(signal);
      // The slot read next into is the one hashed before this: free, since update() is synchronous.
      issue();
      h.update((ring[slot % RING] as Buffer).subarray(0, bytes));
      // A short read (a file shorter than its size said, or one being truncated): the reads
      // already issued past it find nothing or the bytes after, so stop at the first short one.
      if (bytes < CHUNK) break;
    }
  } finally {
    // Reads still in flight write into the ring: they must settle before the handle closes.
    await Promise.allSettled(inFlight);
  }
  throwIfAborted(signal);
  return h.digest('hex');
}
