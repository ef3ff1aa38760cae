import { assertHexKey } from '../../digest.js';
import { WriteError } from '../../errors.js';
import type {
  Child,
  CommitResult,
  Location,
  LocationLike,
  OpOptions,
  ReadOpOptions,
  Stage,
  StageOptions,
  Value,
} from '../contract.js';
import { DiskLocation } from '../disk/index.js';
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

/**
 * A stage on the first of `members` that accepts the value; when one refuses, even midway, the bytes
 * it took move on to the next. Null when every member refuses up front. A key any member already
 * holds is not written again: asked here when the key is known in advance, else at commit.
 */
export async function stageOnFirst(
  members: readonly Location[],
  options: StageOptions,
): Promise<Stage | null> {
  if (options.key !== undefined) {
    assertHexKey(options.key);
    if (await anyHolds(members, options.key, options)) return existedStage();
  }
  const stage = new FanoutStage(members, options);
  return (await stage.open(0, [])) ? stage : null;
}

async function anyHolds(members: readonly Location[], key: string, options: OpOptions): Promise<boolean> {
  const answers = await Promise.all(members.map((m) => m.contains(key, { signal: options.signal })));
  return answers.includes(true);
}

/** A stage that already knows the answer: the key is stored; pushed bytes are dropped. */
function existedStage(): Stage {
  return {
    push: async () => true,
    commit: async () => ({ status: 'existed' }),
    // Nothing was kept, so nothing to hand back.
    reclaim: async function* () {},
    abort: async () => undefined,
  };
}

class FanoutStage implements Stage {
  #index = -1;
  #current: Stage | null = null;
  /** After every member refused: the bytes, handed back by the last one. */
  #leftover: AsyncIterable<Uint8Array> | Iterable<Uint8Array> | undefined;

  constructor(
    private readonly members: readonly Location[],
    private readonly options: StageOptions,
  ) {}

  /** Moves to the first member from `from` that takes `replay`; false when none does. */
  async open(from: number, replay: AsyncIterable<Uint8Array> | Uint8Array[]): Promise<boolean> {
    let bytes = replay;
    for (let i = from; i < this.members.length; i++) {
      const member = this.members[i] as Location;
      const stage = await member.stage(this.options);
      if (!stage) continue;
      let accepted = true;
      for await (const chunk of bytes) {
        if (!(await stage.push(chunk))) {
          accepted = false;
          break;
        }
      }
      if (accepted) {
        this.#index = i;
        this.#current = stage;
        return true;
      }
      bytes = stage.reclaim();
    }
    this.#current = null;
    this.#leftover = bytes;
    return false;
  }

  async push(chunk: Uint8Array): Promise<boolean> {
    if (!this.#current) return false;
    if (await this.#current.push(chunk)) return true;
    return this.open(this.#index + 1, this.#current.reclaim());
  }

  async commit(key: string): Promise<CommitResult> {
    for (;;) {
      if (!this.#current) return { status: 'refused', reason: 'every location refused' };
      // Stored by another member already (asked at stage time when the key was known): not needed.
      const others = this.members.filter((_, i) => i !== this.#index);
      if (this.options.key === undefined && (await anyHolds(others, key, this.options))) {
        await this.#current.abort();
        return { status: 'existed' };
      }
      const result = await this.#current.commit(key);
      if (result.status !== 'refused') return result;
      if (!(await this.open(this.#index + 1, this.#current.reclaim()))) {
        return { status: 'refused', reason: 'every location refused' };
      }
    }
  }

  async *reclaim(): AsyncIterable<Uint8Array> {
    if (this.#leftover) yield* this.#leftover;
  }

  async abort(): Promise<void> {
    await this.#current?.abort();
    this.#current = null;
  }
}
