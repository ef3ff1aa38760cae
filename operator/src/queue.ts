/**
 * The work queue of a controller, as client-go's is: a key is queued once however many events name
 * it (deduplicated), is never handed to two workers at once (a key that changes while it is being
 * worked on is queued again when the worker is done), failures come back with per-key exponential
 * backoff, and every key passes a global rate limit (a token bucket), so a storm of failures cannot
 * flood the API server.
 */
export interface QueueOptions {
  /** First retry delay of a failing key (default 200 ms); doubles each failure. */
  baseDelayMs?: number;
  /** Longest retry delay (default 5 min). */
  maxDelayMs?: number;
  /** Keys started per second across all keys (default 10), with this burst (default 100). */
  ratePerSecond?: number;
  burst?: number;
  now?: () => number;
}

export class WorkQueue {
  readonly #queue: string[] = [];
  readonly #queued = new Set<string>();
  readonly #processing = new Set<string>();
  /** Keys added while being processed: queued again at done(). */
  readonly #dirty = new Set<string>();
  readonly #failures = new Map<string, number>();
  readonly #timers = new Map<string, NodeJS.Timeout>();
  readonly #waiters: Array<(key: string | undefined) => void> = [];
  readonly #base: number;
  readonly #max: number;
  readonly #rate: number;
  readonly #burst: number;
  readonly #now: () => number;
  #tokens: number;
  #refilledAt: number;
  #shutdown = false;

  constructor(options: QueueOptions = {}) {
    this.#base = options.baseDelayMs ?? 200;
    this.#max = options.maxDelayMs ?? 300_000;
    this.#rate = options.ratePerSecond ?? 10;
    this.#burst = options.burst ?? 100;
    this.#now = options.now ?? Date.now;
    this.#tokens = this.#burst;
    this.#refilledAt = this.#now();
  }

  /** Queues the key now (a no-op when it is already queued). */
  add(key: string): void {
    if (this.#shutdown) return;
    const timer = this.#timers.get(key);
    if (timer) {
      clearTimeout(timer);
      this.#timers.delete(key);
    }
    if (this.#processing.has(key)) {
      this.#dirty.add(key);
      return;
    }
    if (this.#queued.has(key)) return;
    this.#queued.add(key);
    const waiter = this.#waiters.shift();
    if (waiter) {
      this.#queued.delete(key);
      this.#processing.add(key);
      waiter(key);
    } else this.#queue.push(key);
  }

  /** Queues the key after `ms` (a later add() brings it forward). */
  addAfter(key: string, ms: number): void {
    if (this.#shutdown) return;
    if (ms <= 0) {
      this.add(key);
      return;
    }
    if (this.#timers.has(key) || this.#queued.has(key)) return;
    const timer = setTimeout(() => {
      this.#timers.delete(key);
      this.add(key);
    }, ms);
    timer.unref();
    this.#timers.set(key, timer);
  }

  /** The key failed: back after its backoff (200 ms, 400 ms, … up to 5 min). */
  retry(key: string): number {
    const n = (this.#failures.get(key) ?? 0) + 1;
    this.#failures.set(key, n);
    const delay = Math.min(this.#max, this.#base * 2 ** (n - 1));
    this.addAfter(key, delay);
    return delay;
  }

  /** The key succeeded (or failed for good): its backoff starts over. */
  forget(key: string): void {
    this.#failures.delete(key);
  }

  failures(key: string): number {
    return this.#failures.get(key) ?? 0;
  }

  /** The next key to work on, waiting for one and for the rate limit; undefined after shutdown. */
  async next(): Promise<string | undefined> {
    await this.#token();
    if (this.#shutdown) return undefined;
    const key = this.#queue.shift();
    if (key !== undefined) {
      this.#queued.delete(key);
      this.#processing.add(key);
      return key;
    }
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** The worker is done with the key; one added meanwhile goes back in the queue. */
  done(key: string): void {
    this.#processing.delete(key);
    if (this.#dirty.delete(key)) this.add(key);
  }

  get length(): number {
    return this.#queue.length;
  }

  shutdown(): void {
    this.#shutdown = true;
    for (const t of this.#timers.values()) clearTimeout(t);
    this.#timers.clear();
    for (const w of this.#waiters.splice(0)) w(undefined);
  }

  async #token(): Promise<void> {
    for (;;) {
      const now = this.#now();
      this.#tokens = Math.min(this.#burst, this.#tokens + ((now - this.#refilledAt) / 1000) * this.#rate);
      this.#refilledAt = now;
      if (this.#tokens >= 1 || this.#shutdown) {
        this.#tokens -= 1;
        return;
      }
      await new Promise((r) => setTimeout(r, Math.ceil(((1 - this.#tokens) / this.#rate) * 1000)));
    }
  }
}
