import { assertHexKey } from '../../digest.js';
import type { CommitResult, Location, OpOptions, Stage, StageOptions } from '../contract.js';

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
  const stage = new FirstFitStage(members, options);
  return (await stage.open(0)) ? stage : null;
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

/** Bytes still owed to some member, pulled one chunk at a time (never closed early: see `chain`). */
type Bytes = AsyncIterator<Uint8Array>;

const none = (): Bytes => ({ next: async () => ({ done: true, value: undefined }) });

class FirstFitStage implements Stage {
  #index = -1;
  #current: Stage | null = null;
  /** After every member refused: the bytes, handed back by the last one. */
  #leftover: Bytes | undefined;

  constructor(
    private readonly members: readonly Location[],
    private readonly options: StageOptions,
  ) {}

  /** Moves to the first member from `from` that takes all of `bytes`; false when none does. */
  async open(from: number, bytes: Bytes = none()): Promise<boolean> {
    for (let i = from; i < this.members.length; i++) {
      const member = this.members[i] as Location;
      let stage: Stage | null;
      try {
        stage = await member.stage(this.options);
      } catch (e) {
        await bytes.return?.();
        throw e;
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
      if (!this.#current) return { status: 'refused', reason: 'every location refused' };
      // Stored by another member already (asked at stage time when the key was known): not needed.
      const others = this.members.filter((_, i) => i !== this.#index);
      if (this.options.key === undefined && (await anyHolds(others, key, this.options))) {
        await this.#current.abort();
        return { status: 'existed' };
      }
      const result = await this.#current.commit(key);
      if (result.status !== 'refused') return result;
      if (!(await this.open(this.#index + 1, this.#current.reclaim()[Symbol.asyncIterator]()))) {
        return { status: 'refused', reason: 'every location refused' };
      }
    }
  }

  async *reclaim(): AsyncIterable<Uint8Array> {
    const leftover = this.#leftover;
    this.#leftover = undefined;
    if (leftover) yield* drain(leftover);
  }

  async abort(): Promise<void> {
    await this.#current?.abort();
    this.#current = null;
    // Bytes nobody took still hold their temp files until their iterator is closed.
    await this.#leftover?.return?.();
    this.#leftover = undefined;
  }
}

/**
 * `first`, then what is left of `rest`. The consumer pulls chunks by hand, never with a for-await
 * that it breaks out of: breaking would close `rest`, and the bytes it still owes would be lost
 * (they were: a value refused midway by two members reached the third without its middle).
 */
async function* chain(first: AsyncIterable<Uint8Array>, rest: Bytes): AsyncGenerator<Uint8Array> {
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
