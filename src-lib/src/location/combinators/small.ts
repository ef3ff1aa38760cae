import { assertHexKey } from '../../digest.js';
import { ConfigError } from '../../errors.js';
import type {
  Child,
  CommitResult,
  Flags,
  Location,
  LocationLike,
  OpOptions,
  ReadOpOptions,
  Stage,
  StageOptions,
  Value,
} from '../contract.js';
import { toLocation } from '../like.js';
import { SpoolStage } from '../spool.js';
import { quarantineIn } from './members.js';

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
  readonly inner: Location;
  readonly options: SmallOptions;

  /** `options` may be just the byte limit: `new Small(redis, 100 * 1024)`. */
  constructor(inner: LocationLike, options: SmallOptions | number) {
    this.inner = toLocation(inner);
    this.options = typeof options === 'number' ? { maxSize: options } : options;
    if (!Number.isSafeInteger(this.options.maxSize) || this.options.maxSize < 0)
      throw new ConfigError(`Small needs a byte count, not ${this.options.maxSize}`, ['maxSize']);
    this.target = `${this.inner.kind} ${this.inner.target} (≤ ${this.options.maxSize} bytes)`;
  }

  children(): readonly Child[] {
    return [{ location: this.inner, use: { as: 'inner' } }];
  }

  describe(): Flags {
    return { maxSize: this.options.maxSize };
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
        let result: CommitResult;
        try {
          result = await stage.commit(key);
        } catch (e) {
          // A failed commit may keep its bytes for a reclaim that will not come from here.
          await stage.abort().catch(() => undefined);
          throw e;
        }
        if (result.status === 'refused') await stage.abort();
        return result;
      },
      { maxSize: this.options.maxSize, memoryLimit: this.options.maxSize },
    );
  }

  read(key: string, options?: ReadOpOptions): Promise<Value | null> {
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
  quarantine(key: string, options?: OpOptions): Promise<string | undefined> {
    return quarantineIn(this.inner, key, options);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}
