/**
 * A few connections to one host, opened on first use, shared round-robin by every operation, and
 * replaced after they break (the owner calls `drop` from its connection's 'end'/'close'/'error').
 */
export class ConnectionPool<T> {
  readonly #slots: Array<Promise<T> | undefined>;
  #next = 0;

  constructor(
    size: number,
    private readonly open: (drop: () => void) => Promise<T>,
    private readonly end: (client: T) => unknown,
  ) {
    this.#slots = new Array(Math.max(1, size)).fill(undefined);
  }

  async get(): Promise<{ client: T; drop: () => void }> {
    const slot = this.#next++ % this.#slots.length;
    let opening = this.#slots[slot];
    if (!opening) {
      // Only this connection may clear its slot: a late event from an old one must not evict its successor.
      const drop = () => {
        if (this.#slots[slot] === opening) this.#slots[slot] = undefined;
      };
      opening = this.open(drop).catch((e) => {
        drop();
        throw e;
      });
      this.#slots[slot] = opening;
    }
    const mine = opening;
    return {
      client: await mine,
      drop: () => {
        if (this.#slots[slot] === mine) this.#slots[slot] = undefined;
      },
    };
  }

  async close(): Promise<void> {
    const open = this.#slots.splice(0, this.#slots.length, ...new Array(this.#slots.length).fill(undefined));
    await Promise.all(
      open.map(async (p) => {
        const client = await p?.catch(() => undefined);
        if (client) await Promise.resolve(this.end(client)).catch(() => undefined);
      }),
    );
  }
}
