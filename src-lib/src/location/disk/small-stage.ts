import {
  closeSync,
  constants,
  fchownSync,
  fsyncSync,
  linkSync,
  openSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { WriteError } from '../../errors.js';
import { ownedName } from '../../util/process.js';
import type { CommitResult, Stage } from '../contract.js';
import type { Found } from './blob.js';
import { isFull } from './errno.js';
import { TEMP_PREFIX } from './temp.js';
import type { Tree } from './tree.js';

/** What a small stage needs from its lake: the synchronous halves of what a DiskStage uses. */
export interface SmallStageContext {
  readonly tmpDir: string;
  readonly tree: Tree;
  readonly blobMode: number;
  readonly fsync: boolean;
  pathOf(key: string): string;
  findSync(key: string): Found;
  foreignFolderSync(key: string): Found | undefined;
  published(key: string): Promise<void>;
}

/**
 * The stage of a small value of known size (at most SYNC_MAX) on a lake on a local filesystem.
 * Its bytes are held in memory until commit, which then does, with synchronous syscalls on the
 * calling thread, what a DiskStage does through the thread pool: look at the key's place (a value
 * already stored costs that one look and writes nothing), else write a private temp file, `link(2)`
 * it into place and remove the temp name. Each syscall takes microseconds on a local filesystem,
 * where a round trip through libuv's pool costs tens (docs/performance.md).
 *
 * Only the common outcomes are handled here: the key's place is empty, or holds a blob of the
 * value's size. Anything else (a blob of another size, a link or FIFO at the place or above it, a
 * full disk, a racing writer, any error) hands the held bytes to a DiskStage, whose commit has every
 * rule for those cases, so the two paths can never disagree about one.
 */
export class SmallStage implements Stage {
  readonly #ctx: SmallStageContext;
  readonly #key: string | undefined;
  readonly #general: () => Promise<Stage>;
  readonly #chunks: Uint8Array[] = [];
  #bytes = 0;
  /** The DiskStage that took over, once one did. */
  #delegate: Stage | undefined;
  #state: 'open' | 'refused' | 'closed' = 'open';

  constructor(ctx: SmallStageContext, key: string | undefined, general: () => Promise<Stage>) {
    this.#ctx = ctx;
    this.#key = key;
    this.#general = general;
  }

  async push(chunk: Uint8Array): Promise<boolean> {
    if (this.#delegate) return this.#delegate.push(chunk);
    if (this.#state !== 'open') throw new WriteError('push after the stage was refused or closed');
    this.#chunks.push(chunk);
    this.#bytes += chunk.byteLength;
    return true;
  }

  async commit(key: string): Promise<CommitResult> {
    if (this.#delegate) return this.#delegate.commit(key);
    if (this.#state !== 'open') throw new WriteError('commit after the stage was refused or closed');
    if (this.#key !== undefined && key !== this.#key) {
      await this.abort();
      throw new WriteError(`stage was opened for key ${this.#key} but committed as ${key}`);
    }
    const final = this.#ctx.pathOf(key);
    const found = this.#ctx.findSync(key);
    if (found.kind === 'blob' && found.size === this.#bytes) {
      // The same value (trusting the digest, as DiskStage does for a blob of the same size).
      this.#state = 'closed';
      return { status: 'existed' };
    }
    if (found.kind === 'missing' && this.#publishSync(key, final)) {
      this.#state = 'closed';
      await this.#ctx.published(key);
      return { status: 'stored' };
    }
    let general: Stage;
    try {
      general = await this.#handOver();
    } catch (e) {
      // No inode for the general path's temp file either: refused, the bytes still here to reclaim.
      if (!isFull(e)) throw e;
      this.#state = 'refused';
      return { status: 'refused', reason: 'the disk is full' };
    }
    return general.commit(key);
  }

  /** True when the value is now at `final`; false when the general path must decide. Leaves no temp file. */
  #publishSync(key: string, final: string): boolean {
    const { tmpDir, tree, blobMode, fsync } = this.#ctx;
    const tmp = join(tmpDir, ownedName(TEMP_PREFIX));
    let fd: number;
    try {
      // Created read-only: our descriptor may still write, nobody else can (as DiskStage does).
      fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, blobMode);
    } catch {
      return false;
    }
    let linked = false;
    try {
      try {
        if (!tree.ownGroup) {
          try {
            fchownSync(fd, -1, tree.gid);
          } catch {
            // not a member of the lake's group: the blob keeps ours, as a DiskStage's does
          }
        }
        for (const chunk of this.#chunks) writeAll(fd, chunk);
        if (fsync) fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      const dir = dirname(final);
      tree.ensureSync(dir);
      if (this.#ctx.foreignFolderSync(key) !== undefined) return false;
      linkSync(tmp, final);
      linked = true;
      if (fsync) syncDirSync(dir);
      return true;
    } catch (e) {
      // Published, but its folder could not be synced: an error, as on the general path.
      if (linked) throw e;
      // A full disk, a racing writer (EEXIST), a folder removed meanwhile, a lake we may only read:
      // the general path meets the same condition and answers it by its rules.
      return false;
    } finally {
      try {
        unlinkSync(tmp);
      } catch {
        // the sweeper removes a temp name left by a process killed here
      }
    }
  }

  /** The held bytes, pushed into a DiskStage that answers from now on. */
  async #handOver(): Promise<Stage> {
    const stage = await this.#general();
    this.#delegate = stage;
    // A DiskStage refuses a push only past 16 MiB held beyond a limit: never for a small value.
    for (const chunk of this.#chunks) await stage.push(chunk);
    this.#chunks.length = 0;
    return stage;
  }

  async *reclaim(): AsyncIterable<Uint8Array> {
    if (this.#delegate) {
      yield* this.#delegate.reclaim();
      return;
    }
    if (this.#state !== 'refused') throw new WriteError('reclaim is only for a refused stage');
    this.#state = 'closed';
    const chunks = this.#chunks.splice(0);
    yield* chunks;
  }

  async abort(): Promise<void> {
    this.#state = 'closed';
    this.#chunks.length = 0;
    await this.#delegate?.abort();
  }
}

function writeAll(fd: number, chunk: Uint8Array): void {
  for (let at = 0; at < chunk.byteLength; ) at += writeSync(fd, chunk, at, chunk.byteLength - at);
}

function syncDirSync(dir: string): void {
  const fd = openSync(dir, constants.O_RDONLY);
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
