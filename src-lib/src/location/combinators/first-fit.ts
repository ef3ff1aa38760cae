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

class FirstFitStage implements Stage {
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
