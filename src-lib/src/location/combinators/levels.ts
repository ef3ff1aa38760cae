import { assertHexKey, type Digest, digest } from '../../digest.js';
import {
  AbortError,
  CollisionError,
  InvalidKeyError,
  KeyMismatchError,
  raceAbort,
  StorageCorruption,
  throwIfAborted,
  WriteError,
} from '../../errors.js';
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
import { stageOnFirst } from './fanout.js';
import { distinctKeys, quarantineIn, servedBy } from './members.js';

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
   * Give up on this level's lookups after this long and go on to the next level (default: the
   * location's own timeouts). Useful for a network cache that must never make reads slower.
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
  op: 'read' | 'contains' | 'touch' | 'keys' | 'replicate' | 'corrupt';
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

const SKIPPED = Symbol('skipped');

/**
 * A cache hierarchy with copy-on-read: reads walk the levels from the top; a hit in a lower level
 * is copied, in the same pass and verified against its key, into every replicate level above it,
 * and then served from the top-most copy. Writes go to the first write level that accepts.
 *
 * Several replicate levels all get the copy (an inclusive hierarchy): a size-limited top level
 * that refuses a large value does not stop the level below it from caching it, and a copy evicted
 * from the top is still found one level down. A delete removes the key from every level, caches
 * included, so that a deleted value cannot come back from a cache.
 *
 * A level that fails or times out on a lookup is skipped and reported (`onFault`, `stats`); a
 * corrupt copy in a level is removed from that level only, and the key is served from below.
 */
export class Levels implements Location {
  readonly kind = 'levels';
  readonly target: string;
  readonly levels: readonly Level[];
  readonly #names: string[];
  readonly #children: readonly Child[];
  readonly #writable: Location[];
  readonly #onFault: (fault: LevelFault) => void;
  readonly #copies: 'all' | 'first';
  readonly #stats: LevelsStats = { hits: {}, copies: {}, faults: {}, misses: 0 };
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
    this.#writable = this.levels.filter((l) => l.write).map((l) => l.location);
    this.#onFault = options.onFault ?? throttledReport();
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
  }

  children(): readonly Child[] {
    return this.#children;
  }

  get copies(): 'all' | 'first' {
    return this.#copies;
  }

  get stats(): LevelsStats {
    return structuredClone(this.#stats);
  }

  async read(key: string, options: ReadOpOptions = {}): Promise<Value | null> {
    assertHexKey(key);
    const pending = this.#copying.get(key);
    if (pending) await pending;
    // Levels that failed during this read get no copy either: a hung cache must not slow reads twice.
    const failed = new Set<Level>();
    let corruption: StorageCorruption | undefined;
    for (let i = 0; i < this.levels.length; i++) {
      const level = this.levels[i] as Level;
      const value = await this.#guard(i, 'read', key, options.signal, (signal) =>
        level.location.read(key, { ...options, signal }),
      );
      if (value === SKIPPED) failed.add(level);
      if (value === SKIPPED || value === null) continue;
      count(this.#stats.hits, this.#names[i] as string);
      await this.#touchBelow(i, key, options.signal);
      const above = this.levels.slice(0, i).filter((l) => l.replicate && !failed.has(l));
      if (above.length === 0) return servedBy(value, level.location, key);
      const served = await this.#copyUp(i, key, value, above, options);
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
    this.#copying.set(key, done);
    try {
      const copies = await this.#copy(from, key, value, targets, options);
      if (copies instanceof StorageCorruption) {
        await value.close();
        return copies;
      }
      for (const level of copies) {
        const copy = await level.location.read(key, options).catch(() => null);
        if (copy) {
          await value.close();
          return servedBy(copy, level.location, key);
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

  /**
   * Streams the value once into a stage on every target that accepts it, hashing as it goes, and
   * commits where the bytes match the key. Returns the levels that now hold the key, top first,
   * or the corruption when the source bytes do not match the key.
   */
  async #copy(
    from: number,
    key: string,
    value: Value,
    targets: Level[],
    options: ReadOpOptions,
  ): Promise<Level[] | StorageCorruption> {
    const { signal } = options;
    const algorithm = options.digest === null ? undefined : (options.digest ?? digestForKey(key));
    const open: Array<{ level: Level; stage: Stage }> = [];
    try {
      for (const level of targets) {
        const stage = await this.#guard(this.levels.indexOf(level), 'replicate', key, signal, (s) =>
          level.location.stage({ size: value.size, key, digest: algorithm, signal: s }),
        );
        if (stage !== SKIPPED && stage !== null) {
          open.push({ level, stage });
          if (this.#copies === 'first') break;
        }
      }
    } catch (e) {
      // The caller aborted, or a key error: the stages opened so far hold temp files.
      await Promise.all(open.map((t) => t.stage.abort().catch(() => undefined)));
      throw e;
    }
    if (open.length === 0) return [];
    const h = algorithm?.create();
    let live = open;
    try {
      for await (const chunk of chunksOf(value, signal)) {
        throwIfAborted(signal);
        h?.update(chunk as Buffer);
        const accepted = await Promise.all(live.map((t) => this.#push(t, key, chunk as Buffer)));
        live = live.filter((_, j) => accepted[j]);
        // Nobody takes a copy any more: stop reading; the reader checks what it is served, if it wants.
        if (live.length === 0) return [];
      }
    } catch (e) {
      await Promise.all(live.map((t) => t.stage.abort()));
      if (signal?.aborted) throw new AbortError(signal.reason);
      // The source level failed mid-read: report it, and serve whatever copies exist (none).
      this.#fault(from, 'read', key, e as Error);
      return [];
    }
    if (h) {
      const actual = h.digest('hex');
      if (actual !== key) {
        await Promise.all(live.map((t) => t.stage.abort()));
        const source = this.levels[from] as Level;
        const to = await servedBy(value, source.location, key).quarantine?.();
        const where = `${source.location.kind} ${source.location.target}`;
        const corruption = new StorageCorruption(key, actual, where, to);
        this.#fault(from, 'corrupt', key, corruption);
        return corruption;
      }
    }
    const held: Level[] = [];
    for (const t of live) {
      try {
        const result = await t.stage.commit(key);
        if (result.status === 'refused') await t.stage.abort();
        else {
          held.push(t.level);
          if (result.status === 'stored') count(this.#stats.copies, this.#name(t.level));
        }
      } catch (e) {
        await t.stage.abort().catch(() => undefined);
        if (e instanceof CollisionError) throw e;
        this.#fault(this.levels.indexOf(t.level), 'replicate', key, e as Error);
      }
    }
    return held;
  }

  async #push(t: { level: Level; stage: Stage }, key: string, chunk: Buffer): Promise<boolean> {
    try {
      if (await t.stage.push(chunk)) return true;
    } catch (e) {
      this.#fault(this.levels.indexOf(t.level), 'replicate', key, e as Error);
    }
    // Refused (too large for it) or failed: this level does without a copy.
    await t.stage.abort().catch(() => undefined);
    return false;
  }

  async #touchBelow(hit: number, key: string, signal: AbortSignal | undefined): Promise<void> {
    for (let i = hit + 1; i < this.levels.length; i++) {
      const level = this.levels[i] as Level;
      if (level.touch)
        await this.#guard(i, 'touch', key, signal, (s) => level.location.touch(key, { signal: s }));
    }
  }

  async contains(key: string, options: OpOptions = {}): Promise<boolean> {
    assertHexKey(key);
    for (let i = 0; i < this.levels.length; i++) {
      const level = this.levels[i] as Level;
      const found = await this.#guard(i, 'contains', key, options.signal, (signal) =>
        level.location.contains(key, { signal }),
      );
      if (found === true) return true;
    }
    return false;
  }

  /**
   * A write goes to the first write level that accepts it (a refusal, even midway, moves the bytes
   * on to the next write level). A key already held by a write level is not written again.
   */
  stage(options: StageOptions = {}): Promise<Stage | null> {
    return this.#writable.length === 0 ? Promise.resolve(null) : stageOnFirst(this.#writable, options);
  }

  /**
   * Removes the key from every level, caches included. Every level is tried; if one fails, the
   * first error is thrown after the others were done, since a copy left behind would come back.
   */
  async delete(key: string, options?: OpOptions): Promise<boolean> {
    assertHexKey(key);
    let any = false;
    let failure: unknown;
    for (const level of this.levels) {
      try {
        any = (await level.location.delete(key, options)) || any;
      } catch (e) {
        failure ??= e;
      }
    }
    if (failure !== undefined) throw failure;
    return any;
  }

  async touch(key: string, options: OpOptions = {}): Promise<boolean> {
    assertHexKey(key);
    let any = false;
    for (let i = 0; i < this.levels.length; i++) {
      const level = this.levels[i] as Level;
      const found = await this.#guard(i, 'touch', key, options.signal, (signal) =>
        level.location.touch(key, { signal }),
      );
      any = found === true || any;
    }
    return any;
  }

  /** Every key of every level, once; a level whose listing fails is reported and skipped. */
  keys(options: OpOptions = {}): AsyncIterable<string> {
    const locations = this.levels.map((l) => l.location);
    return distinctKeys(locations, options, (i, e) => this.#fault(i, 'keys', undefined, e));
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

  /**
   * Runs one level's lookup; a failure or a timeout of that level is reported and gives SKIPPED.
   * The caller's own abort, and errors about the key itself, still throw.
   */
  async #guard<T>(
    index: number,
    op: LevelFault['op'],
    key: string | undefined,
    signal: AbortSignal | undefined,
    run: (signal: AbortSignal | undefined) => Promise<T>,
  ): Promise<T | typeof SKIPPED> {
    const ms = (this.levels[index] as Level).timeoutMs;
    const timeout = ms === undefined ? undefined : AbortSignal.timeout(ms);
    const combined = timeout && signal ? AbortSignal.any([signal, timeout]) : (timeout ?? signal);
    const attempt = run(combined);
    try {
      return await raceAbort(attempt, timeout);
    } catch (caught) {
      if (signal?.aborted) throw new AbortError(signal.reason);
      let e = caught;
      if (timeout?.aborted) {
        // A value that arrives after all is closed, not leaked.
        attempt.then(
          (late) => (late as Partial<Value> | null)?.close?.(),
          () => undefined,
        );
        e = new Error(`no answer within ${ms} ms`);
      }
      if (e instanceof InvalidKeyError || e instanceof KeyMismatchError || e instanceof CollisionError)
        throw e;
      this.#fault(index, op, key, e as Error);
      return SKIPPED;
    }
  }

  #fault(index: number, op: LevelFault['op'], key: string | undefined, error: Error): void {
    const level = this.#names[index] ?? String(index);
    count(this.#stats.faults, level);
    this.#onFault({ level, op, key, error });
  }

  #name(level: Level): string {
    return this.#names[this.levels.indexOf(level)] as string;
  }
}

/** A small value in one piece when its location can do that (a file read beats a stream's round trips). */
async function* chunksOf(value: Value, signal: AbortSignal | undefined): AsyncIterable<Uint8Array> {
  if (value.bytes && value.size !== undefined && value.size <= 1 << 20) yield await value.bytes({ signal });
  else for await (const chunk of value.stream({ signal })) yield chunk as Buffer;
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

/**
 * The default report: a line on stderr per level and operation, at most every 10 s, saying how many
 * were held back, so a cache that is down does not flood the log with a line per read.
 */
function throttledReport(): (fault: LevelFault) => void {
  const last = new Map<string, { at: number; held: number }>();
  return (fault) => {
    const topic = `${fault.level}\0${fault.op}`;
    const seen = last.get(topic);
    const now = Date.now();
    if (seen && now - seen.at < 10_000) {
      seen.held++;
      return;
    }
    const what = fault.key === undefined ? fault.op : `${fault.op} ${fault.key.slice(0, 12)}…`;
    const outcome = fault.op === 'corrupt' ? 'not served' : 'failed, skipped';
    const more = seen?.held ? ` (and ${seen.held} more since the last report)` : '';
    console.warn(`tarn: level ${fault.level}: ${what} ${outcome}: ${fault.error.message}${more}`);
    last.set(topic, { at: now, held: 0 });
  };
}

/** The digest a bare key implies, when the caller did not say: a 64-digit key is sha256. */
function digestForKey(key: string): Digest | undefined {
  return key.length === 64 ? digest('sha256') : undefined;
}
