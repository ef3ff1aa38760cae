import { formatSize } from '../util/size.js';

/** Below this a transfer is too quick for a bar to help. */
const MIN_BYTES = 32 << 20;

/**
 * A one-line progress bar on stderr, drawn only on a terminal and only for large transfers,
 * at most 10 times a second.
 */
export class Progress {
  #last = Number.NEGATIVE_INFINITY;
  readonly #start: number;
  #drawn = false;
  constructor(
    private readonly label: string,
    private readonly total: number | undefined,
    private readonly out: NodeJS.WriteStream,
    /** The clock (ms); a test passes its own, so the 100 ms throttle is checked without sleeping. */
    private readonly now: () => number = Date.now,
  ) {
    this.#start = now();
  }

  static enabled(total: number | undefined, out: NodeJS.WriteStream): boolean {
    return out.isTTY === true && (total === undefined || total >= MIN_BYTES);
  }

  /** A bar when one would help (see `enabled`), else undefined. */
  static start(label: string, total: number | undefined, out: NodeJS.WriteStream): Progress | undefined {
    return Progress.enabled(total, out) ? new Progress(label, total, out) : undefined;
  }

  update(bytes: number): void {
    const now = this.now();
    if (now - this.#last < 100) return;
    this.#last = now;
    const rate = bytes / Math.max((now - this.#start) / 1000, 0.001);
    const width = 30;
    let bar = '';
    if (this.total) {
      const done = Math.min(1, bytes / this.total);
      const fill = Math.round(done * width);
      bar = `[${'#'.repeat(fill)}${' '.repeat(width - fill)}] ${(done * 100).toFixed(0).padStart(3)}% `;
    }
    const of = this.total ? ` / ${formatSize(this.total)}` : '';
    this.out.write(`\r${this.label} ${bar}${formatSize(bytes)}${of}  ${formatSize(rate)}/s\x1b[K`);
    this.#drawn = true;
  }

  done(): void {
    if (this.#drawn) this.out.write('\r\x1b[K');
  }
}
