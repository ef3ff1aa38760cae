import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isFull } from './errno.js';
import { withLock } from './lock.js';

export interface Usage {
  bytes: number;
  blobs: number;
}

/**
 * The byte total of a size-capped lake (config.yml `max_size`), shared by every process that
 * writes it: a small JSON file under tools/, changed only under a lock file.
 *
 * A write reserves its bytes before it publishes and gives them back if the key already existed,
 * so a writer killed in between leaves the total too high, never too low: a capped lake never
 * grows past its cap. `sweep()` recounts the lake and removes that slack.
 */
export class Ledger {
  readonly #file: string;
  readonly #lock: string;
  constructor(
    tools: string,
    private readonly recount: () => Promise<Usage>,
  ) {
    this.#file = join(tools, 'size.json');
    this.#lock = join(tools, 'size.lock');
  }

  /** The current total. The file is replaced by rename, so reading it needs no lock; only a first count does. */
  async read(): Promise<Usage> {
    return (await this.#parse()) ?? withLock(this.#lock, () => this.#load());
  }

  /** Adds `delta` if the total stays within `max`; answers whether it did. */
  async reserve(bytes: number, max: number): Promise<boolean> {
    return withLock(this.#lock, async () => {
      const u = await this.#load();
      if (u.bytes + bytes > max) return false;
      await this.#save({ bytes: u.bytes + bytes, blobs: u.blobs + 1 });
      return true;
    });
  }

  async release(bytes: number): Promise<void> {
    try {
      await withLock(this.#lock, async () => {
        const u = await this.#load();
        await this.#save({ bytes: Math.max(0, u.bytes - bytes), blobs: Math.max(0, u.blobs - 1) });
      });
    } catch (e) {
      // On a full disk the total stays too high, the safe side (the cap still holds); sweep() recounts.
      if (!isFull(e)) throw e;
    }
  }

  /** Replaces the total by a fresh count of the lake. */
  async rebuild(): Promise<Usage> {
    return withLock(this.#lock, async () => {
      const u = await this.recount();
      await this.#save(u);
      return u;
    });
  }

  async #load(): Promise<Usage> {
    const known = await this.#parse();
    if (known) return known;
    // First capped write to this lake (or the file was deleted): count what is there.
    const u = await this.recount();
    await this.#save(u);
    return u;
  }

  /** The saved total, or undefined when there is none yet. */
  async #parse(): Promise<Usage | undefined> {
    let text: string;
    try {
      text = await readFile(this.#file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
    const u = JSON.parse(text) as Usage;
    return { bytes: Number(u.bytes) || 0, blobs: Number(u.blobs) || 0 };
  }

  async #save(u: Usage): Promise<void> {
    const tmp = `${this.#file}.${process.pid}.tmp`;
    await writeFile(tmp, JSON.stringify(u));
    await rename(tmp, this.#file);
  }
}
