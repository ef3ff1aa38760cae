import { assertHexKey, type Digest } from '../../digest.js';
import { StorageCorruption, WriteError } from '../../errors.js';
import type {
  Child,
  Location,
  LocationLike,
  OpOptions,
  ReadOpOptions,
  Stage,
  StageOptions,
  Value,
} from '../contract.js';
import { toLocation } from '../like.js';
import { recordedDigest } from '../tree.js';
import { copyInto } from './copy.js';
import { type FaultOp, Faults, Skipped, throttledReport } from './faults.js';
import { stageOnFirst } from './first-fit.js';
import { deleteEverywhere, distinctKeys, type Place, quarantineIn, servedBy } from './members.js';

export interface LevelOptions {
  /** Writes may go here (default true). Only the first write level that accepts a value gets it. */
  write?: boolean;
  /** A hit in a lower level is copied here (default true). */
  replicate?: boolean;
  /** When a level above serves a key, tell this level it was used (default false), for LRU eviction. */
  touch?: boolean;
  /** For messages, `tarn describe` and the fault counters (default `<index> <kind>`). */
  name?: string;
  /**
   * Give up on this level's lookups (reads, and the key check of a write) after this long and go on
   * to the next level (default: the location's own timeouts). Useful for a network cache that must
   * never make reads or writes slower.
   */
  timeoutMs?: number;
}

/** One level of a Levels hierarchy: a location and what the hierarchy may do with it. */
export class Level {
  readonly location: Location;
  readonly write: boolean;
  readonly replicate: boolean;
  readonly touch: boolean;
  readonly name: string | undefined;
  readonly timeoutMs: number | undefined;

  constructor(location: LocationLike, options: LevelOptions = {}) {
    this.location = toLocation(location);
    this.write = options.write ?? true;
    this.replicate = options.replicate ?? true;
    this.touch = options.touch ?? false;
    this.name = options.name;
    this.timeoutMs = options.timeoutMs;
  }
}

/** Something went wrong in one level and the hierarchy carried on without it. */
export interface LevelFault {
  level: string;
  op: FaultOp;
  key?: string;
  error: Error;
}

export interface LevelsOptions {
  /**
   * Where copy-on-read puts copies: `all` (default) every replicate level above the hit that
   * accepts; `first` only the top-most one that accepts up front, as Python tarn does.
   */
  copies?: 'all' | 'first';
  /** Called for every fault; the default writes a line to stderr, at most one per level and operation every 10 s. */
  onFault?: (fault: LevelFault) => void;
}

/** Counters, per level name, since the Levels was built. */
export interface LevelsStats {
  hits: Record<string, number>;
  /** Copies made into this level by copy-on-read. */
  copies: Record<string, number>;
  faults: Record<string, number>;
  misses: number;
}

/** Marks a read that found another reader copying the key, and looks again once that copy is done. */
const AGAIN = Symbol('again');
/** How often one read waits for other readers' copies before it copies the key itself. */
const MAX_WAITS = 3;

/**
 * A cache hierarchy with copy-on-read: reads walk the levels from the top; a hit in a lower level
 * is copied, in the same pass and verified against its key, into every replicate level above it,
 * and then served from the top-most copy. Writes go to the first write level that accepts and is
 * reachable.
 *
 * Several replicate levels all get the copy (an inclusive hierarchy): a size-limited top level
 * that refuses a large value does not stop the level below it from caching it, and a copy evicted
 * from the top is still found one level down. A delete removes the key from every level, caches
 * included, so that a deleted value cannot come back from a cache.
 *
 * A level that fails or times out is skipped, by reads and writes alike, and reported (`onFault`,
 * `stats`); a corrupt copy in a level is removed from that level only, and the key is served from
 * below.
 */
export class Levels implements Location {
  readonly kind = 'levels';
  readonly target: string;
  readonly levels: readonly Level[];
  readonly #names: string[];
  readonly #children: readonly Child[];
  readonly #writable: Place[];
  readonly #faults: Faults;
  readonly #copies: 'all' | 'first';
  /** The digest the lakes of this hierarchy record, if any does; checks copies when the caller passes none. */
  readonly #digest: Digest | undefined;
  readonly #stats: Omit<LevelsStats, 'faults'> = { hits: {}, copies: {}, misses: 0 };
  /** Copies in progress, per key: a second reader waits for the first copy instead of making another. */
  readonly #copying = new Map<string, Promise<void>>();

  /**
   * Levels from the top (fastest) down. Each is a Level, a Location, a folder path or an array
   * (a Fanout); bare ones get the defaults (write and replicate). An options object may come last.
   */
  constructor(...levels: Array<Level | LocationLike | LevelsOptions>) {
    let options: LevelsOptions = {};
    const last = levels.at(-1);
    if (last !== undefined && isOptions(last)) {
      options = last;
      levels = levels.slice(0, -1);
    }
    if (levels.length === 0) throw new WriteError('Levels needs at least one level');
    this.levels = levels.map((l) => (l instanceof Level ? l : new Level(l as LocationLike)));
    this.#names = this.levels.map((l, i) => l.name ?? `${i} ${l.location.kind}`);
    this.#writable = this.levels.flatMap((l, index) => (l.write ? [{ index, location: l.location }] : []));
    const onFault = options.onFault;
    const report = onFault
      ? (level: string, op: FaultOp, key: string | undefined, error: Error) =>
          onFault({ level, op, key, error })
      : throttledReport('level');
    this.#faults = new Faults(
      this.#names,
      this.levels.map((l) => l.timeoutMs),
      report,
    );
    this.#copies = options.copies ?? 'all';
    this.target = `[${this.levels.map((l) => `${l.location.kind} ${l.location.target}`).join(' > ')}]`;
    this.#children = this.levels.map((l, index) => ({
      location: l.location,
      use: {
        as: 'level',
        index,
        write: l.write,
        replicate: l.replicate,
        touch: l.touch,
        ...(l.name === undefined ? {} : { name: l.name }),
        ...(l.timeoutMs === undefined ? {} : { timeoutMs: l.timeoutMs }),
      },
    }));
    // Once, here: reads must not walk the tree.
    this.#digest = recordedDigest(this);
  }

  children(): readonly Child[] {
    return this.#children;
  }

  get copies(): 'all' | 'first' {
    return this.#copies;
  }

  get stats(): LevelsStats {
    return structuredClone({ ...this.#stats, faults: this.#faults.counts });
  }

  async read(key: string, options: ReadOpOptions = {}): Promise<Value | null> {
    assertHexKey(key);
    for (let attempt = 0; ; attempt++) {
      const pending = this.#copying.get(key);
      if (pending) await pending;
      const found = await this.#readOnce(key, options, attempt < MAX_WAITS);
      if (found !== AGAIN) return found;
    }
  }

  /**
   * One walk down the levels. AGAIN: another reader began copying the key up while this one looked
   * (only when `wait`); the caller waits for that copy and looks again, rather than copy it twice.
   */
  async #readOnce(key: string, options: ReadOpOptions, wait: boolean): Promise<Value | null | typeof AGAIN> {
    // Levels that failed during this read get no copy either: a hung cache must not slow reads twice.
    const failed = new Set<Level>();
    let corruption: StorageCorruption | undefined;
    for (let i = 0; i < this.levels.length; i++) {
      const level = this.levels[i] as Level;
      const value = await this.#faults.run(i, 'read', key, options.signal, (signal) =>
        level.location.read(key, { ...options, signal }),
      );
      if (value instanceof Skipped) failed.add(level);
      if (value instanceof Skipped || value === null) continue;
      // A read that is no use (touch: false, e.g. housekeeping) copies nothing up and tells no one.
      const use = options.touch !== false;
      const above = use ? this.levels.slice(0, i).filter((l) => l.replicate && !failed.has(l)) : [];
      // Checked and claimed (in #copyUp) with no await in between, so only one reader copies.
      if (above.length > 0 && wait && this.#copying.has(key)) {
        await value.close();
        return AGAIN;
      }
      count(this.#stats.hits, this.#names[i] as string);
      if (above.length === 0) {
        if (use) await this.#touchBelow(i, key, options.signal);
        return servedBy(value, level.location, key);
      }
      const served = await this.#copyUp(i, key, value, above, options);
      await this.#touchBelow(i, key, options.signal);
      if (!(served instanceof StorageCorruption)) return served;
      // This level's bytes were corrupt (now out of service); a level further down may have good ones.
      corruption = served;
    }
    // Only corrupt copies: say so, rather than pretend the key was never stored.
    if (corruption) throw corruption;
    this.#stats.misses++;
    return null;
  }

  /**
   * Copies `value` (found in level `from`) into the `targets` above it and serves the top-most copy.
   * When the bytes do not match the key, that copy is quarantined and the corruption returned.
   */
  async #copyUp(
    from: number,
    key: string,
    value: Value,
    targets: Level[],
    options: ReadOpOptions,
  ): Promise<Value | StorageCorruption> {
    const source = this.levels[from] as Level;
    let release: () => void = () => undefined;
    const done = new Promise<void>((resolve) => {
      release = resolve;
    });
    // Synchronously after the caller's check of #copying: no other reader can claim the key between.
    this.#copying.set(key, done);
    try {
      const copies = await copyInto(
        { index: from, location: source.location },
        key,
        value,
        targets.map((level) => ({ index: this.levels.indexOf(level), location: level.location })),
        {
          // The caller's digest, else the lakes'. With neither, the copy is not checked: guessing
          // one from the key's length once quarantined good sha3-256 blobs as corrupt sha256 ones.
          digest: options.digest === null ? undefined : (options.digest ?? this.#digest),
          firstOnly: this.#copies === 'first',
          signal: options.signal,
          faults: this.#faults,
          stored: (place: Place) => count(this.#stats.copies, this.#names[place.index] as string),
        },
      );
      if (copies instanceof StorageCorruption) {
        await value.close();
        return copies;
      }
      for (const { location } of copies) {
        const copy = await location.read(key, options).catch(() => null);
        if (copy) {
          await value.close();
          return servedBy(copy, location, key);
        }
      }
      // No level above took it (all refused or failed): serve the original; its stream can be reopened.
      return servedBy(value, source.location, key);
    } catch (e) {
      await value.close();
      throw e;
    } finally {
      // Only our own entry: a second copy of the key may have started meanwhile.
      if (this.#copying.get(key) === done) this.#copying.delete(key);
      release();
    }
  }

  async #touchBelow(hit: number, key: string, signal: AbortSignal | undefined): Promise<void> {
    for (let i = hit + 1; i < this.levels.length; i++) {
      const level = this.levels[i] as Level;
      if (level.touch)
        await this.#faults.run(i, 'touch', key, signal, (s) => level.location.touch(key, { signal: s }));
    }
  }

  async contains(key: string, options: OpOptions = {}): Promise<boolean> {
    assertHexKey(key);
    for (let i = 0; i < this.levels.length; i++) {
      const level = this.levels[i] as Level;
      const found = await this.#faults.run(i, 'contains', key, options.signal, (signal) =>
        level.location.contains(key, { signal }),
      );
      if (found === true) return true;
    }
    return false;
  }

  /**
   * A write goes to the first write level that accepts it and is reachable (a refusal, even midway,
   * moves the bytes on to the next write level). A key already held by a write level is not written
   * again. A write level that fails or hangs (its `timeoutMs`) on the key check, or fails to store,
   * is reported as a fault and passed over, as for reads: a cache that is down never fails a write.
   */
  stage(options: StageOptions = {}): Promise<Stage | null> {
    return this.#writable.length === 0
      ? Promise.resolve(null)
      : stageOnFirst(this.#writable, options, this.#faults);
  }

  /**
   * Removes the key from every level, caches included. Every level is tried, since a copy left
   * behind would come back; if some fail, PartialDeleteError says what was deleted where and what
   * failed.
   */
  async delete(key: string, options?: OpOptions): Promise<boolean> {
    assertHexKey(key);
    return deleteEverywhere(
      this.levels.map((l) => l.location),
      key,
      options,
    );
  }

  async touch(key: string, options: OpOptions = {}): Promise<boolean> {
    assertHexKey(key);
    let any = false;
    for (let i = 0; i < this.levels.length; i++) {
      const level = this.levels[i] as Level;
      const found = await this.#faults.run(i, 'touch', key, options.signal, (signal) =>
        level.location.touch(key, { signal }),
      );
      any = found === true || any;
    }
    return any;
  }

  /** Every key of every level, once; a level whose listing fails is reported and skipped. */
  keys(options: OpOptions = {}): AsyncIterable<string> {
    const locations = this.levels.map((l) => l.location);
    return distinctKeys(locations, options, (i, e) => this.#faults.report(i, 'keys', undefined, e));
  }

  /** Takes the key out of every level that has it (used when the caller cannot tell which copy was bad). */
  async quarantine(key: string, options?: OpOptions): Promise<string | undefined> {
    let where: string | undefined;
    for (const { location } of this.levels)
      where = (await quarantineIn(location, key, options).catch(() => undefined)) ?? where;
    return where;
  }

  async close(): Promise<void> {
    // A location may sit in two places of a tree; closing twice is allowed by the contract.
    await Promise.all(this.levels.map((l) => l.location.close()));
  }
}

function isOptions(x: unknown): x is LevelsOptions {
  return (
    typeof x === 'object' &&
    x !== null &&
    !Array.isArray(x) &&
    !(x instanceof Level) &&
    typeof (x as Partial<Location>).read !== 'function'
  );
}

function count(counters: Record<string, number>, name: string): void {
  counters[name] = (counters[name] ?? 0) + 1;
}
