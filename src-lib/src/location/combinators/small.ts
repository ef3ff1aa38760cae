import { assertHexKey } from '../../digest.js';
import type { Location, OpOptions, Stage, StageOptions, Value } from '../../location.js';
import { SpoolStage } from '../spool.js';

export interface SmallOptions {
  /** Largest value accepted, in bytes; larger ones are refused after reading at most maxSize + one chunk. */
  maxSize: number;
}

/**
 * Lets only small values into a location (e.g. Redis on top of a disk): a larger value is refused
 * without reaching the inner location, and handed back whole. Everything else is the inner
 * location's. Unlike Python tarn's Small, the empty value is accepted: it is small.
 */
export class Small implements Location {
  readonly kind = 'small';
  readonly target: string;
  constructor(
    readonly inner: Location,
    readonly options: SmallOptions,
  ) {
    this.target = `${inner.kind} ${inner.target} (≤ ${options.maxSize} bytes)`;
  }

  async stage(options: StageOptions = {}): Promise<Stage | null> {
    if (options.key !== undefined) assertHexKey(options.key);
    if ((options.size ?? 0) > this.options.maxSize) return null;
    // Bytes wait in memory (they are at most maxSize) until the inner location can take them whole.
    return new SpoolStage(
      async (key, spool) => {
        const stage = await this.inner.stage({ ...options, key, size: spool.size });
        if (!stage) return { status: 'refused', reason: `${this.inner.kind} ${this.inner.target} refused` };
        if (spool.size > 0 && !(await stage.push(spool.memory ?? Buffer.alloc(0)))) {
          await stage.abort();
          return { status: 'refused', reason: `${this.inner.kind} ${this.inner.target} refused midway` };
        }
        const result = await stage.commit(key);
        if (result.status === 'refused') await stage.abort();
        return result;
      },
      { maxSize: this.options.maxSize, memoryLimit: this.options.maxSize },
    );
  }

  read(key: string, options?: OpOptions): Promise<Value | null> {
    return this.inner.read(key, options);
  }
  contains(key: string, options?: OpOptions): Promise<boolean> {
    return this.inner.contains(key, options);
  }
  delete(key: string, options?: OpOptions): Promise<boolean> {
    return this.inner.delete(key, options);
  }
  keys(options?: OpOptions): AsyncIterable<string> {
    return this.inner.keys(options);
  }
  touch(key: string, options?: OpOptions): Promise<boolean> {
    return this.inner.touch(key, options);
  }
  async quarantine(key: string, options?: OpOptions): Promise<string | undefined> {
    if (this.inner.quarantine) return this.inner.quarantine(key, options);
    await this.inner.delete(key, options);
    return undefined;
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}
