import { assertHexKey } from '../../digest.js';
import type { CommitResult, Stage, StageOptions } from '../contract.js';
import { whereOf } from '../tree.js';
import { type Faults, isFault, Skipped } from './faults.js';
import type { Place } from './members.js';

/**
 * A write to the first of `members` that accepts the value and is reachable (Fanout's members,
 * Levels' write levels). When one refuses, even midway, the bytes it took move on to the next.
 *
 * A key any member already holds is not written again: every member is asked (concurrently), up
 * front when the key is known, else at commit. A member that fails or hangs on that question
 * (`faults` applies its timeout and reports it) is passed over for this write, as is one whose
 * stage fails to open or whose commit fails: its bytes move on to the next member, when its stage
 * can hand them back. A value is never lost to a member that is down.
 *
 * Null when every member refuses up front; when every member is down instead, the first one's error
 * is thrown (the caller still holds a value whose key is known: its bytes are in memory). When none
 * is left at commit, the commit is refused and `reclaim()` hands the bytes back.
 */
export async function stageOnFirst(
  members: readonly Place[],
  options: StageOptions,
  faults: Faults,
): Promise<Stage | null> {
  const down = new Map<Place, Error>();
  if (options.key !== undefined) {
    assertHexKey(options.key);
    if (await anyHolds(members, options.key, options.signal, faults, down)) return existedStage();
  }
  const stage = new FirstFitStage(members, options, faults, down);
  if (await stage.open(0)) return stage;
  const [first] = down.values();
  if (first && down.size === members.length) throw first;
  return null;
}

/**
 * Asks every member not yet known to be down whether it holds `key`, concurrently. Those that fail
 * or hang join `down` (a question no answer came to is no "no": they are only passed over).
 */
async function anyHolds(
  members: readonly Place[],
  key: string,
  signal: AbortSignal | undefined,
  faults: Faults,
  down: Map<Place, Error>,
): Promise<boolean> {
  const answers = await Promise.all(
    members
      .filter((m) => !down.has(m))
      .map(async (m) => {
        const held = await faults.run(m.index, 'contains', key, signal, (s) =>
          m.location.contains(key, { signal: s }),
        );
        if (held instanceof Skipped) down.set(m, held.error);
        return held === true;
      }),
  );
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

/** Bytes still owed to some member, pulled one chunk at a time (never closed early: see `chain`). */
type Bytes = AsyncIterator<Uint8Array>;

const none = (): Bytes => ({ next: async () => ({ done: true, value: undefined }) });

class FirstFitStage implements Stage {
  #index = -1;
  #current: Stage | null = null;
  /** After every member refused: the bytes, handed back by the last one. */
  #leftover: Bytes | undefined;
  /** Whether the members were asked for the key (at stage time, when it was known). */
  #asked: boolean;
  /** Why members did not take the value, for the refusal. */
  readonly #why: string[] = [];

  constructor(
    private readonly members: readonly Place[],
    private readonly options: StageOptions,
    private readonly faults: Faults,
    private readonly down: Map<Place, Error>,
  ) {
    this.#asked = options.key !== undefined;
  }

  /** Moves to the first reachable member from `from` that takes all of `bytes`; false when none does. */
  async open(from: number, bytes: Bytes = none()): Promise<boolean> {
    for (let i = from; i < this.members.length; i++) {
      const member = this.members[i] as Place;
      if (this.down.has(member)) continue;
      let stage: Stage | null;
      try {
        stage = await member.location.stage(this.options);
      } catch (e) {
        if (!isFault(e, this.options.signal)) {
          await bytes.return?.();
          throw e;
        }
        this.#passOver(member, e as Error);
        continue;
      }
      if (!stage) continue;
      let refused = false;
      try {
        for (;;) {
          const next = await bytes.next();
          if (next.done) break;
          if (!(await stage.push(next.value))) {
            refused = true;
            break;
          }
        }
      } catch (e) {
        // A failed push leaves it unknown what the stage holds: the write fails, nothing is stored.
        await stage.abort().catch(() => undefined);
        await bytes.return?.();
        throw e;
      }
      if (!refused) {
        this.#index = i;
        this.#current = stage;
        return true;
      }
      // What this member took, then the rest of what it was offered (a replay it refused midway).
      bytes = chain(stage.reclaim(), bytes);
    }
    this.#current = null;
    this.#leftover = bytes;
    return false;
  }

  async push(chunk: Uint8Array): Promise<boolean> {
    if (!this.#current) return false;
    if (await this.#current.push(chunk)) return true;
    return this.open(this.#index + 1, this.#current.reclaim()[Symbol.asyncIterator]());
  }

  async commit(key: string): Promise<CommitResult> {
    for (;;) {
      const current = this.#current;
      if (!current) return { status: 'refused', reason: this.#reason() };
      const member = this.members[this.#index] as Place;
      if (!this.#asked) {
        this.#asked = true;
        // Every member, this one too: its answer also shows it is still there before it is trusted
        // with the value (a hung one would otherwise hold the commit for its own, longer timeout).
        if (await anyHolds(this.members, key, this.options.signal, this.faults, this.down)) {
          await current.abort();
          return { status: 'existed' };
        }
        if (this.down.has(member) && (await this.#moveOn(current))) continue;
      }
      let result: CommitResult;
      try {
        result = await current.commit(key);
      } catch (e) {
        if (!isFault(e, this.options.signal)) {
          await current.abort().catch(() => undefined);
          throw e;
        }
        this.faults.report(member.index, 'write', key, e as Error);
        this.#passOver(member, e as Error);
        if (await this.#moveOn(current)) continue;
        await current.abort().catch(() => undefined);
        throw e;
      }
      if (result.status !== 'refused') return result;
      this.#why.push(`${where(member)}: ${result.reason}`);
      await this.open(this.#index + 1, current.reclaim()[Symbol.asyncIterator]());
    }
  }

  /**
   * Offers the bytes of `stage`, whose member was found down, to the members after it. False when
   * the stage cannot hand them back (then the caller commits or fails with it, as before).
   */
  async #moveOn(stage: Stage): Promise<boolean> {
    const bytes = stage.reclaim()[Symbol.asyncIterator]();
    let first: IteratorResult<Uint8Array>;
    try {
      first = await bytes.next();
    } catch {
      return false;
    }
    this.#current = null;
    await this.open(this.#index + 1, chain(first.done ? [] : [first.value], bytes));
    return true;
  }

  #passOver(member: Place, error: Error): void {
    if (!this.down.has(member)) this.down.set(member, error);
  }

  #reason(): string {
    const unreachable = [...this.down].map(([m, e]) => `${where(m)} is unreachable (${e.message})`);
    const all = [...this.#why, ...unreachable];
    return all.length > 0 ? all.join('; ') : 'every location refused';
  }

  async *reclaim(): AsyncIterable<Uint8Array> {
    const leftover = this.#leftover;
    this.#leftover = undefined;
    if (leftover) yield* drain(leftover);
    // Not committed yet: the current member's bytes (if its stage can hand them back).
    else if (this.#current) {
      const current = this.#current;
      this.#current = null;
      yield* current.reclaim();
    }
  }

  async abort(): Promise<void> {
    await this.#current?.abort();
    this.#current = null;
    // Bytes nobody took still hold their temp files until their iterator is closed.
    await this.#leftover?.return?.();
    this.#leftover = undefined;
  }
}

const where = (member: Place): string => whereOf(member.location);

/**
 * `first`, then what is left of `rest`. The consumer pulls chunks by hand, never with a for-await
 * that it breaks out of: breaking would close `rest`, and the bytes it still owes would be lost
 * (they were: a value refused midway by two members reached the third without its middle).
 */
async function* chain(
  first: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  rest: Bytes,
): AsyncGenerator<Uint8Array> {
  try {
    yield* first;
    yield* drain(rest);
  } finally {
    await rest.return?.();
  }
}

/** The rest of `bytes`; closes it when the consumer stops early, so its temp files go. */
async function* drain(bytes: Bytes): AsyncGenerator<Uint8Array> {
  try {
    for (;;) {
      const next = await bytes.next();
      if (next.done) return;
      yield next.value;
    }
  } finally {
    await bytes.return?.();
  }
}
