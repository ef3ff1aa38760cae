import {
  defaultIndexOf,
  type HashKeyStorage,
  type Leasing,
  type Location,
  leasingOf,
  ServiceError,
  walkTree,
} from '@tarnjs/tarn';
import { type HotCache, type HotCacheSettings, hotCacheOf } from './hot.js';

/** One built storage: what a config turned into, used by requests until a reload replaces it. */
export interface Tree {
  readonly storage: HashKeyStorage;
  /** The config's memo index, or a disk lake's `tools/memo`; undefined: memo routes answer 501. */
  readonly memoIndex: Location | undefined;
  /** Where leases come from (Redis, else a disk lake); undefined: lease routes answer 501. */
  readonly leasing: Leasing | undefined;
  /** 1 for the first config, +1 per reload that succeeded. */
  readonly generation: number;
  /**
   * Some location of the tree waits on something else (a server, a network): its lookups are worth
   * an abort signal. False for disk lakes alone, whose lookups are a few syscalls (and whose large
   * reads stop when their response stream is destroyed): a request's signal is then not made.
   */
  readonly abortable: boolean;
  /** Hot small values of this tree, answered from memory (hot.ts); undefined: none kept. */
  readonly hot: HotCache | undefined;
}

/** A tree held by a request (or a lease); `release()` exactly once, when done with it. */
export interface Held {
  readonly tree: Tree;
  release(): void;
}

interface Slot {
  tree: Tree;
  users: number;
  retired: boolean;
  closed?: Promise<void>;
}

/**
 * The current tree, swapped on reload. A request holds the tree it started with to its end, so a
 * reload never changes the storage under a request in flight; a replaced tree is closed when its
 * last holder lets go (its connections, its file handles), not before.
 */
export class Trees {
  #current: Slot | undefined;
  readonly #retired = new Set<Slot>();
  #generation = 0;
  /** Holders of any tree, and who waits for there to be none (shutdown). */
  #held = 0;
  readonly #idle = new Set<() => void>();
  readonly #hot: HotCacheSettings | undefined;

  /** `hot`: the cache each tree gets (none when absent or sized 0). */
  constructor(hot?: HotCacheSettings) {
    this.#hot = hot;
  }

  /** Builds a Tree record for a storage (the memo index and leasing found as smartCache finds them). */
  static tree(
    storage: HashKeyStorage,
    memoIndex: Location | undefined,
    generation: number,
    hot?: HotCacheSettings,
  ): Tree {
    const index = memoIndex ?? defaultIndexOf(storage);
    // Only a leaf that is no disk lake waits on anything (combinators have no I/O of their own).
    const abortable = [...walkTree(storage.location)].some(
      ({ location }) => !location.children?.().length && location.kind !== 'disk',
    );
    return {
      storage,
      memoIndex: index,
      leasing: leasingOf(index, storage.location),
      generation,
      abortable,
      hot: hot && hotCacheOf(hot, storage.digest),
    };
  }

  get generation(): number {
    return this.#generation;
  }

  current(): Tree | undefined {
    return this.#current?.tree;
  }

  /** The current tree, held until `release()`. No tree yet (the first config failed): 503. */
  acquire(): Held {
    const slot = this.#current;
    if (!slot)
      throw new ServiceError('TARN_UNAVAILABLE', 'the sidecar has no storage: its config did not load');
    slot.users++;
    this.#held++;
    let released = false;
    return {
      tree: slot.tree,
      release: () => {
        if (released) return;
        released = true;
        slot.users--;
        this.#held--;
        if (slot.retired && slot.users === 0) this.#close(slot);
        if (this.#held === 0) for (const wake of this.#idle) wake();
      },
    };
  }

  /** Makes `storage` the current tree; the previous one closes once its last request is done. */
  swap(storage: HashKeyStorage, memoIndex: Location | undefined): Tree {
    this.#generation++;
    const slot: Slot = {
      tree: Trees.tree(storage, memoIndex, this.#generation, this.#hot),
      users: 0,
      retired: false,
    };
    const old = this.#current;
    this.#current = slot;
    if (old) this.#retire(old);
    return slot.tree;
  }

  /**
   * Resolves once no tree is held (every request has released its tree: a cut upload has removed
   * its temp file), or after `timeoutMs`; true when it is idle. Shutdown waits for this before it
   * closes the trees, so that a request's cleanup is not cut short by the exit.
   */
  idle(timeoutMs: number): Promise<boolean> {
    if (this.#held === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (idle: boolean) => {
        clearTimeout(timer);
        this.#idle.delete(wake);
        resolve(idle);
      };
      const wake = () => done(true);
      const timer = setTimeout(() => done(false), timeoutMs);
      this.#idle.add(wake);
    });
  }

  /** Closes every tree: the current one and those still waiting for their requests. Waits for none. */
  async close(): Promise<void> {
    const old = this.#current;
    this.#current = undefined;
    if (old) this.#retire(old, true);
    for (const slot of this.#retired) this.#close(slot);
    await Promise.all([...this.#retired].map((s) => s.closed));
  }

  #retire(slot: Slot, now = false): void {
    slot.retired = true;
    this.#retired.add(slot);
    if (now || slot.users === 0) this.#close(slot);
  }

  #close(slot: Slot): void {
    slot.closed ??= (async () => {
      const { storage, memoIndex, hot } = slot.tree;
      hot?.clear();
      // A close that fails (a server already gone) must not stop the others from closing.
      await Promise.allSettled([storage.close(), memoIndex?.close()]);
    })().finally(() => this.#retired.delete(slot));
  }
}
