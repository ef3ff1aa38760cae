/**
 * Buffers that go back to their reader once their one consumer is done with them.
 *
 * Why: a 1 GiB write(path) reads 1024 fresh 1 MiB buffers. Each is memory outside V8's heap, and
 * V8 answers that much outside memory with a full mark-compact every ~14 MiB. In a small process
 * that costs little; in the sidecar (a larger heap: fastify, prom-client, the hot cache) it measured
 * 0.5 s per GiB, a third of the write. Three buffers in rotation need no collection at all.
 *
 * The protocol is ownership, declared, never guessed: a reader lends a pool's buffer as a chunk;
 * whoever holds the chunk last and knows nobody else will read it calls `recycle` (the disk stage,
 * once its write of the chunk is done). Anyone that hands one chunk to several consumers calls
 * `pin` first, and the chunk is then an ordinary buffer. A chunk never recycled is garbage as any
 * other: forgetting to recycle costs speed, never correctness.
 */
const lent = new WeakMap<ArrayBufferLike, BufferPool>();

export class BufferPool {
  readonly #free: ArrayBuffer[] = [];

  /** `size`: bytes of each buffer; `keep`: how many returned buffers are kept for reuse. */
  constructor(
    readonly size: number,
    readonly keep = 4,
  ) {}

  /** A buffer of `size` bytes (its first `n` used), lent until recycled. */
  take(n = this.size): Buffer {
    const memory = this.#free.pop() ?? new ArrayBuffer(this.size);
    lent.set(memory, this);
    return Buffer.from(memory, 0, Math.min(n, this.size));
  }

  give(memory: ArrayBuffer): void {
    if (this.#free.length < this.keep) this.#free.push(memory);
  }
}

/** The consumer is done with `chunk` (and with every view of its memory): its pool may reuse it. */
export function recycle(chunk: Uint8Array): void {
  const memory = chunk.buffer;
  const pool = lent.get(memory);
  if (!pool) return;
  lent.delete(memory);
  pool.give(memory as ArrayBuffer);
}

/** `chunk` is about to have several consumers: it is never reused. */
export function pin(chunk: Uint8Array): void {
  lent.delete(chunk.buffer);
}
