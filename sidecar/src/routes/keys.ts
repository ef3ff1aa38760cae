import { Readable } from 'node:stream';
import { ROUTES } from '@tarnjs/tarn/sidecar-api';
import type { FastifyInstance } from 'fastify';
import { route } from './route.js';

/** Lines of the NDJSON listing sent together: one write per line would cost more than the keys. */
const LINES_PER_CHUNK = 256;

/**
 * The `limit` smallest strings it is offered that are greater than `after`, in memory O(limit):
 * a max-heap of the best so far, whose top is dropped when a smaller one comes.
 */
export class SmallestKeys {
  readonly #heap: string[] = [];
  /** Keys offered that were after `after` (more than `limit`: there is a next page). */
  candidates = 0;

  constructor(
    private readonly limit: number,
    private readonly after: string | undefined,
  ) {}

  offer(key: string): void {
    if (this.after !== undefined && key <= this.after) return;
    this.candidates++;
    const heap = this.#heap;
    if (heap.length < this.limit) {
      heap.push(key);
      this.#up(heap.length - 1);
    } else if (key < (heap[0] as string)) {
      heap[0] = key;
      this.#down(0);
    }
  }

  /** The page, ascending, and the key to pass as `after` for the next one (null: none). */
  page(): { keys: string[]; next: string | null } {
    const keys = [...this.#heap].sort();
    const more = this.candidates > this.limit;
    return { keys, next: more ? (keys[keys.length - 1] ?? null) : null };
  }

  #up(i: number): void {
    const heap = this.#heap;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if ((heap[parent] as string) >= (heap[i] as string)) return;
      [heap[parent], heap[i]] = [heap[i] as string, heap[parent] as string];
      i = parent;
    }
  }

  #down(i: number): void {
    const heap = this.#heap;
    for (;;) {
      const [l, r] = [2 * i + 1, 2 * i + 2];
      let largest = i;
      if (l < heap.length && (heap[l] as string) > (heap[largest] as string)) largest = l;
      if (r < heap.length && (heap[r] as string) > (heap[largest] as string)) largest = r;
      if (largest === i) return;
      [heap[largest], heap[i]] = [heap[i] as string, heap[largest] as string];
      i = largest;
    }
  }
}

export async function keyRoutes(app: FastifyInstance): Promise<void> {
  route(app, ROUTES.listKeys, async (request, reply) => {
    const storage = request.tree().storage;
    const { limit, after } = request.query;
    const signal = request.signal;
    if (limit !== undefined) {
      const page = new SmallestKeys(limit, after?.toLowerCase());
      for await (const key of storage.keys({ signal })) page.offer(key);
      return reply.send(page.page());
    }
    // Streamed as the storage lists them: Readable.from pulls the next keys only when the socket
    // has taken the previous ones, so a listing of millions of keys holds a few hundred at a time.
    const lines = Readable.from(
      (async function* () {
        let batch = '';
        let n = 0;
        for await (const key of storage.keys({ signal })) {
          batch += `{"key":${JSON.stringify(key)}}\n`;
          if (++n === LINES_PER_CHUNK) {
            yield batch;
            batch = '';
            n = 0;
          }
        }
        if (batch) yield batch;
      })(),
      { objectMode: false },
    );
    return reply.type('application/x-ndjson').send(lines);
  });

  route(app, ROUTES.fetch, async (request, reply) => {
    const storage = request.tree().storage;
    const results: Array<{ key: string; present: boolean }> = [];
    for await (const r of storage.fetch(request.body.keys, { signal: request.signal })) results.push(r);
    return reply.send({ results });
  });

  route(app, ROUTES.describe, async (request, reply) => {
    return reply.send(await request.tree().storage.describe({ signal: request.signal }));
  });
}
