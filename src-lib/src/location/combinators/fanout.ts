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
import { stageOnFirst } from './first-fit.js';
import { distinctKeys, quarantineIn, servedBy } from './members.js';

/**
 * Several locations as one, e.g. disks used one after the other: reads find the key in whichever
 * member has it; a write goes to the first member that accepts it, and when a member refuses
 * (full, over a limit), even midway, the bytes it took are handed to the next one. A key stored by
 * any member is not written again elsewhere.
 */
export class Fanout implements Location {
  readonly kind = 'fanout';
  readonly target: string;
  readonly members: readonly Location[];
  readonly #children: readonly Child[];

  /** Members are locations, folder paths (disk lakes) or arrays (nested fanouts), as in the original. */
  constructor(...members: LocationLike[]) {
    if (members.length === 0) throw new WriteError('a Fanout needs at least one location');
    this.members = members.map(memberOf);
    this.target = `[${this.members.map((m) => `${m.kind} ${m.target}`).join(', ')}]`;
    this.#children = this.members.map((location, index) => ({ location, use: { as: 'member', index } }));
  }

  children(): readonly Child[] {
    return this.#children;
  }

  async read(key: string, options?: ReadOpOptions): Promise<Value | null> {
    assertHexKey(key);
    for (const m of this.members) {
      const value = await m.read(key, options);
      // Wrapped, so that a corrupt copy is taken out of the member that served it, not all of them.
      if (value) return servedBy(value, m, key);
    }
    return null;
  }

  async contains(key: string, options?: OpOptions): Promise<boolean> {
    assertHexKey(key);
    for (const m of this.members) if (await m.contains(key, options)) return true;
    return false;
  }

  /** Deletes the key from every member (a key can sit in two after a member was added). */
  async delete(key: string, options?: OpOptions): Promise<boolean> {
    assertHexKey(key);
    let any = false;
    for (const m of this.members) any = (await m.delete(key, options)) || any;
    return any;
  }

  async touch(key: string, options?: OpOptions): Promise<boolean> {
    assertHexKey(key);
    let any = false;
    for (const m of this.members) any = (await m.touch(key, options)) || any;
    return any;
  }

  /** Every key once, even when two members hold it. */
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
    return stageOnFirst(this.members, options);
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
