import { assertHexKey } from '../../digest.js';
import { WriteError } from '../../errors.js';
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
import { DiskLocation } from '../disk/index.js';
import { type FaultOp, Faults, Skipped, throttledReport } from './faults.js';
import { stageOnFirst } from './first-fit.js';
import { deleteEverywhere, distinctKeys, type Place, quarantineIn, servedBy } from './members.js';

/** A member that failed; the Fanout went on with the others where it could. */
export interface FanoutFault {
  /** The member's name: `<index> <kind>`, e.g. `0 redis`. */
  member: string;
  op: FaultOp;
  key?: string;
  error: Error;
}

export interface FanoutOptions {
  /** Called for every fault; the default writes a line to stderr, at most one per member and operation every 10 s. */
  onFault?: (fault: FanoutFault) => void;
}

/** Counters, per member name, since the Fanout was built. */
export interface FanoutStats {
  faults: Record<string, number>;
}

/**
 * Several locations as one, e.g. disks used one after the other: reads find the key in whichever
 * member has it; a write goes to the first member that accepts it, and when a member refuses
 * (full, over a limit), even midway, the bytes it took are handed to the next one. A key stored by
 * any member is not written again elsewhere.
 *
 * A member that is down or fails is reported (`onFault`, `stats`) and passed over where an answer
 * does not depend on it: a write goes to the next member; a key found in another member is served.
 * But a key found nowhere while a member failed is that member's error, not a miss: the member may
 * well hold it (every member is storage here, unlike the caches of a Levels).
 */
export class Fanout implements Location {
  readonly kind = 'fanout';
  readonly target: string;
  readonly members: readonly Location[];
  readonly #children: readonly Child[];
  readonly #places: readonly Place[];
  readonly #faults: Faults;

  /**
   * Members are locations, folder paths (disk lakes) or arrays (nested fanouts), as in the original.
   * An options object may come last.
   */
  constructor(...members: Array<LocationLike | FanoutOptions>) {
    let options: FanoutOptions = {};
    const last = members.at(-1);
    if (last !== undefined && isOptions(last)) {
      options = last;
      members = members.slice(0, -1);
    }
    if (members.length === 0) throw new WriteError('a Fanout needs at least one location');
    this.members = (members as LocationLike[]).map(memberOf);
    this.target = `[${this.members.map((m) => `${m.kind} ${m.target}`).join(', ')}]`;
    this.#children = this.members.map((location, index) => ({ location, use: { as: 'member', index } }));
    this.#places = this.members.map((location, index) => ({ location, index }));
    const onFault = options.onFault;
    this.#faults = new Faults(
      this.members.map((m, i) => `${i} ${m.kind}`),
      [],
      onFault ? (member, op, key, error) => onFault({ member, op, key, error }) : throttledReport('member'),
    );
  }

  children(): readonly Child[] {
    return this.#children;
  }

  get stats(): FanoutStats {
    return { faults: { ...this.#faults.counts } };
  }

  async read(key: string, options: ReadOpOptions = {}): Promise<Value | null> {
    assertHexKey(key);
    let failure: Skipped | undefined;
    for (const [i, m] of this.members.entries()) {
      const value = await this.#faults.run(i, 'read', key, options.signal, (signal) =>
        m.read(key, { ...options, signal }),
      );
      if (value instanceof Skipped) failure ??= value;
      // Wrapped, so that a corrupt copy is taken out of the member that served it, not all of them.
      else if (value) return servedBy(value, m, key);
    }
    if (failure) throw failure.error;
    return null;
  }

  async contains(key: string, options: OpOptions = {}): Promise<boolean> {
    assertHexKey(key);
    let failure: Skipped | undefined;
    for (const [i, m] of this.members.entries()) {
      const found = await this.#faults.run(i, 'contains', key, options.signal, (signal) =>
        m.contains(key, { signal }),
      );
      if (found instanceof Skipped) failure ??= found;
      else if (found) return true;
    }
    if (failure) throw failure.error;
    return false;
  }

  /**
   * Deletes the key from every member (a key can sit in two after a member was added, or after a
   * write passed over a member that was down). If some fail, PartialDeleteError says what was
   * deleted where and what failed.
   */
  async delete(key: string, options?: OpOptions): Promise<boolean> {
    assertHexKey(key);
    return deleteEverywhere(this.members, key, options);
  }

  /** Tells every member that holds the key; a failure matters only when no member had it. */
  async touch(key: string, options: OpOptions = {}): Promise<boolean> {
    assertHexKey(key);
    let any = false;
    let failure: Skipped | undefined;
    for (const [i, m] of this.members.entries()) {
      const found = await this.#faults.run(i, 'touch', key, options.signal, (signal) =>
        m.touch(key, { signal }),
      );
      if (found instanceof Skipped) failure ??= found;
      else any = found || any;
    }
    if (!any && failure) throw failure.error;
    return any;
  }

  /** Every key once, even when two members hold it. A member that cannot list fails the listing. */
  keys(options?: OpOptions): AsyncIterable<string> {
    return distinctKeys(this.members, options);
  }

  /** Takes the key out of every member that has it (the caller cannot tell which copy was bad). */
  async quarantine(key: string, options?: OpOptions): Promise<string | undefined> {
    let where: string | undefined;
    for (const m of this.members) where = (await quarantineIn(m, key, options)) ?? where;
    return where;
  }

  stage(options: StageOptions = {}): Promise<Stage | null> {
    return stageOnFirst(this.#places, options, this.#faults);
  }

  async close(): Promise<void> {
    await Promise.all(this.members.map((m) => m.close()));
  }
}

/**
 * A member as given: a folder path is a disk lake, an array a nested Fanout. (What `toLocation` does;
 * it lives in like.ts, which needs this class for arrays, so importing it here would be a cycle.)
 */
function memberOf(like: LocationLike): Location {
  if (typeof like === 'string') return new DiskLocation(like);
  if (Array.isArray(like)) return new Fanout(...(like as readonly LocationLike[]));
  return like as Location;
}

function isOptions(x: unknown): x is FanoutOptions {
  return (
    typeof x === 'object' &&
    x !== null &&
    !Array.isArray(x) &&
    typeof (x as Partial<Location>).read !== 'function'
  );
}
