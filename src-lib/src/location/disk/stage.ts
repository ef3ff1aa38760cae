import { createReadStream } from 'node:fs';
import { type FileHandle, link, lstat, open, rename, stat, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Digest } from '../../digest.js';
import { CollisionError, WriteError } from '../../errors.js';
import { CHUNK, readChunks, writeFully } from '../../util/chunks.js';
import { ownedName } from '../../util/process.js';
import type { CommitResult, Stage } from '../contract.js';
import type { Ledger } from './ledger.js';
import { TEMP_PREFIX } from './temp.js';
import type { Tree } from './tree.js';

/** What a stage needs from its lake. */
export interface StageContext {
  readonly tmpDir: string;
  readonly tree: Tree;
  readonly blobMode: number;
  readonly fsync: boolean;
  readonly digest: Digest | undefined;
  readonly ledger: Ledger | undefined;
  readonly maxSize: number | undefined;
  /** Free bytes left on the lake's filesystem beyond its reserve; re-checked as the value grows. */
  headroom(): Promise<number>;
  pathOf(key: string): string;
  quarantine(key: string): Promise<string | undefined>;
  published(key: string): Promise<void>;
}

// Re-check free space after this many bytes, so a long write into a filling disk stops in time.
const SPACE_CHECK_EVERY = 64 * CHUNK;

/**
 * A value being written to a lake: bytes go to a private temp file inside the lake (same
 * filesystem), and commit publishes it with link(2), which never replaces an existing blob
 * and is atomic, so readers see the whole value or nothing, and a killed writer leaves only
 * a temp file for the sweeper.
 */
export class DiskStage implements Stage {
  readonly #ctx: StageContext;
  readonly #tmp: string;
  readonly #fh: FileHandle;
  readonly #key: string | undefined;
  #pending: Promise<void> = Promise.resolve();
  #inflight: { chunk: Uint8Array; at: number } | undefined;
  /** Bytes accepted so far. */
  #bytes = 0;
  /** Bytes known to be in the temp file (a failed write leaves less than accepted). */
  #fileBytes = 0;
  #nextSpaceCheck: number;
  #headroom: number;
  #usedAtStart: number;
  /** Accepted bytes that are not in the temp file, in order, kept for reclaim. */
  readonly #held: Uint8Array[] = [];
  #state: 'open' | 'refused' | 'closed' = 'open';

  private constructor(
    ctx: StageContext,
    tmp: string,
    fh: FileHandle,
    key: string | undefined,
    headroom: number,
    used: number,
  ) {
    this.#ctx = ctx;
    this.#tmp = tmp;
    this.#fh = fh;
    this.#key = key;
    this.#headroom = headroom;
    this.#usedAtStart = used;
    this.#nextSpaceCheck = SPACE_CHECK_EVERY;
  }

  static async create(
    ctx: StageContext,
    key: string | undefined,
    headroom: number,
    used: number,
  ): Promise<DiskStage> {
    const tmp = join(ctx.tmpDir, ownedName(TEMP_PREFIX));
    // Created read-only: our descriptor may still write, nobody else can, and no chmod is needed later.
    const fh = await open(tmp, 'wx', ctx.blobMode);
    if (process.getegid?.() !== ctx.tree.gid) await fh.chown(-1, ctx.tree.gid).catch(() => undefined);
    return new DiskStage(ctx, tmp, fh, key, headroom, used);
  }

  async push(chunk: Uint8Array): Promise<boolean> {
    if (this.#state !== 'open') throw new WriteError('push after the stage was refused or closed');
    const after = this.#bytes + chunk.byteLength;
    const { maxSize } = this.#ctx;
    if (maxSize !== undefined && this.#usedAtStart + after > maxSize) return this.#refuse(chunk);
    if (after > this.#headroom) return this.#refuse(chunk);
    if (after >= this.#nextSpaceCheck) {
      this.#nextSpaceCheck = after + SPACE_CHECK_EVERY;
      this.#headroom = this.#bytes + (await this.#ctx.headroom());
      if (after > this.#headroom) return this.#refuse(chunk);
    }
    // One write in flight behind the caller: hashing the next chunk overlaps with this write.
    if (!(await this.#settle())) return this.#refuse(chunk);
    this.#inflight = { chunk, at: this.#bytes };
    this.#pending = writeFully(this.#fh, chunk, this.#bytes);
    this.#bytes = after;
    return true;
  }

  /** Waits for the write in flight; false when the disk filled up under it. */
  async #settle(): Promise<boolean> {
    const inflight = this.#inflight;
    try {
      await this.#pending;
      if (inflight) this.#fileBytes = inflight.at + inflight.chunk.byteLength;
      return true;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (!inflight || (code !== 'ENOSPC' && code !== 'EDQUOT')) throw e;
      // A full disk is a refusal, not an error: keep the chunk so the value can go elsewhere.
      this.#fileBytes = inflight.at;
      this.#held.push(inflight.chunk);
      return false;
    } finally {
      this.#inflight = undefined;
      this.#pending = Promise.resolve();
    }
  }

  async #refuse(chunk: Uint8Array): Promise<false> {
    this.#state = 'refused';
    await this.#settle();
    this.#held.push(chunk);
    return false;
  }

  async commit(key: string): Promise<CommitResult> {
    if (this.#state !== 'open') throw new WriteError('commit after the stage was refused or closed');
    if (this.#key !== undefined && key !== this.#key) {
      await this.abort();
      throw new WriteError(`stage was opened for key ${this.#key} but committed as ${key}`);
    }
    let final: string;
    try {
      final = this.#ctx.pathOf(key);
      if (!(await this.#settle())) {
        this.#state = 'refused';
        return { status: 'refused', reason: 'the disk is full' };
      }
      if (this.#ctx.fsync) await this.#fh.sync();
      await this.#fh.close();
    } catch (e) {
      await this.abort();
      throw e;
    }
    const { ledger, maxSize } = this.#ctx;
    if (ledger && maxSize !== undefined && !(await ledger.reserve(this.#bytes, maxSize))) {
      this.#state = 'refused';
      return { status: 'refused', reason: `the lake's max_size of ${maxSize} bytes is reached` };
    }
    this.#state = 'closed';
    let result: CommitResult;
    try {
      result = await this.#publish(key, final);
    } catch (e) {
      await ledger?.release(this.#bytes);
      await unlink(this.#tmp).catch(() => undefined);
      throw e;
    }
    if (result.status === 'existed') await ledger?.release(this.#bytes);
    await unlink(this.#tmp).catch(() => undefined);
    if (result.status === 'stored') await this.#ctx.published(key);
    return result;
  }

  async #publish(key: string, final: string, attempt = 0): Promise<CommitResult> {
    await this.#ctx.tree.ensure(dirname(final));
    try {
      await link(this.#tmp, final);
      if (this.#ctx.fsync) await syncDir(dirname(final));
      return { status: 'stored' };
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') {
        const verdict = await this.#existing(key, final);
        if (verdict === 'replaced' && attempt < 2) return this.#publish(key, final, attempt + 1);
        return { status: 'existed' };
      }
      if (code === 'ENOENT' && attempt < 2) {
        this.#ctx.tree.forget();
        return this.#publish(key, final, attempt + 1);
      }
      // Filesystems without hard links (some FUSE and SMB mounts): rename, after a look.
      if (code === 'EPERM' || code === 'ENOTSUP' || code === 'EOPNOTSUPP' || code === 'EMLINK') {
        if (await exists(final))
          return (await this.#existing(key, final)) === 'replaced'
            ? this.#publish(key, final, attempt + 1)
            : { status: 'existed' };
        await rename(this.#tmp, final);
        return { status: 'stored' };
      }
      throw e;
    }
  }

  /**
   * The key is already stored. Same size: it is the same value (we trust the digest rather
   * than re-read the blob on every duplicate write). Different size: either the stored blob
   * is corrupt (it no longer hashes to its key), and ours replaces it, or it is intact and
   * this is a true collision.
   */
  async #existing(key: string, final: string): Promise<'same' | 'replaced'> {
    let path = final;
    let st = await lstat(final);
    if (st.isDirectory()) {
      path = join(final, 'data'); // Python tarn's legacy layout
      st = await stat(path);
    }
    if (st.size === this.#bytes) return 'same';
    const d = this.#ctx.digest;
    if (!d)
      throw new CollisionError(key, `the stored blob has ${st.size} bytes, the new value ${this.#bytes}`);
    const actual = await hashFile(path, d);
    if (actual === key) {
      throw new CollisionError(
        key,
        `the stored blob (${st.size} bytes) and the new value (${this.#bytes} bytes) both hash to it`,
      );
    }
    await this.#ctx.quarantine(key);
    return 'replaced';
  }

  async *reclaim(): AsyncIterable<Uint8Array> {
    if (this.#state !== 'refused') throw new WriteError('reclaim is only for a refused stage');
    this.#state = 'closed';
    try {
      await this.#fh.close().catch(() => undefined);
      if (this.#fileBytes > 0) {
        const fh = await open(this.#tmp, 'r');
        try {
          yield* readChunks(fh, undefined, this.#fileBytes);
        } finally {
          await fh.close();
        }
      }
      yield* this.#held;
    } finally {
      await unlink(this.#tmp).catch(() => undefined);
    }
  }

  async abort(): Promise<void> {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    await this.#settle().catch(() => undefined);
    await this.#fh.close().catch(() => undefined);
    await unlink(this.#tmp).catch(() => undefined);
  }
}

async function exists(path: string): Promise<boolean> {
  return lstat(path).then(
    () => true,
    () => false,
  );
}

async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function hashFile(path: string, d: Digest): Promise<string> {
  const h = d.create();
  for await (const chunk of createReadStream(path, { highWaterMark: CHUNK })) h.update(chunk as Buffer);
  return h.digest('hex');
}
