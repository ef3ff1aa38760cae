import type { FileHandle } from 'node:fs/promises';
import type { Digest } from '../digest.js';
import { throwIfAborted } from '../errors.js';
import { CHUNK } from './chunks.js';

/** Buffers in the ring: two reads in flight while the third is hashed. */
const RING = 3;

/**
 * The hex digest of a file's bytes, read through its descriptor to its end.
 *
 * Nothing but the hash sees the bytes, so the same three 1 MiB buffers are read into again and
 * again. Fresh buffers per chunk (`readChunks`) are memory outside V8's heap, and V8 answers every
 * ~32 MiB of it with a full mark of the heap on the main thread: for a 1 GiB file in a process that
 * has the library loaded (a 10 MiB heap) that measured 0.3 s of 1.1 s, and it grows with the
 * application's heap. With the ring, hashing a cached GiB takes what the hash takes (0.72 s here,
 * `openssl dgst` 0.87 s), two reads always in flight in the thread pool while a chunk is hashed.
 */
export async function hashHandle(fh: FileHandle, digest: Digest, signal?: AbortSignal): Promise<string> {
  const h = digest.create();
  const ring = Array.from({ length: RING }, () => Buffer.allocUnsafeSlow(CHUNK));
  const inFlight: Array<{ at: number; buf: Buffer; bytes: Promise<number> }> = [];
  let next = 0; // the position of the next read
  let issued = 0; // reads issued, so the ring slot of each
  const issue = () => {
    // The slot read into is never the one being hashed: with RING - 1 reads in flight, it is the
    // one hashed before it (update() is synchronous).
    const buf = ring[issued++ % RING] as Buffer;
    inFlight.push({ at: next, buf, bytes: fh.read(buf, 0, CHUNK, next).then((r) => r.bytesRead) });
    next += CHUNK;
  };
  const settle = () => Promise.allSettled(inFlight.map((r) => r.bytes));
  try {
    for (let i = 0; i < RING - 1; i++) issue();
    for (;;) {
      const read = inFlight.shift() as (typeof inFlight)[number];
      const bytes = await read.bytes;
      if (bytes === 0) break;
      throwIfAborted(signal);
      if (bytes === CHUNK) issue();
      h.update(read.buf.subarray(0, bytes));
      if (bytes < CHUNK) {
        // A short read (the end, or a network filesystem's partial answer): the reads issued
        // after it started at the wrong place. They are let finish and issued again from here,
        // so a file is hashed whole whatever sizes its reads come back in.
        await settle();
        inFlight.length = 0;
        next = read.at + bytes;
        for (let i = 0; i < RING - 1; i++) issue();
      }
    }
  } finally {
    // Reads still in flight write into the ring: they must settle before the handle closes.
    await settle();
  }
  throwIfAborted(signal);
  return h.digest('hex');
}
