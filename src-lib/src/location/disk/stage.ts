import { constants } from 'node:fs';
import { type FileHandle, link, lstat, open, rename, unlink } from 'node:fs/promises';
import { dirname, join, sep } from 'node:path';
import type { Digest } from '../../digest.js';
import { CollisionError, WriteError } from '../../errors.js';
import { CHUNK, readChunks, writeFully } from '../../util/chunks.js';
import { hashHandle } from '../../util/hash-file.js';
import { ownedName } from '../../util/process.js';
import { recycle } from '../../util/recycle.js';
import type { CommitResult, Stage } from '../contract.js';
import type { Found } from './blob.js';
import { isFull } from './errno.js';
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
  /** What sits at the key's place (see BlobFinder.find). */
  find(key: string): Promise<Found>;
  /** The first folder above the key's blob that is no real folder (a link out of the lake), if any. */
  foreignFolder(key: string): Promise<Found | undefined>;
  /** Moves whatever sits at the key's place to the quarantine. */
  quarantine(key: string): Promise<string | undefined>;
  /** Moves any entry of the lake (a foreign folder) to the quarantine. */
  moveAside(path: string): Promise<string | undefined>;
  published(key: string): Promise<void>;
}

// Re-check free space after this many bytes, so a long write into a filling disk stops in time.
const SPACE_CHECK_EVERY = 64 * CHUNK;

/**
 * How often a publish is tried. It is tried again when the place was taken by something that is not
 * the value (moved aside first) or by a blob deleted before it could be examined (a racing delete).
 */
const PUBLISH_ATTEMPTS = 8;

/**
 * Past a limit (the lake is full, or at its max_size) a value can only be `existed`, which its key
 * tells at commit. Until then the chunks of a value of unknown size are held in memory, up to this
 * many bytes; past that the stage refuses, since a refused stream's bytes have nowhere else to go.
 */
export const HOLD_PAST_LIMIT = 16 << 20;

/** Chunks accepted but not written, in order, with their byte count. */
class Held {
  readonly chunks: Uint8Array[] = [];
  bytes = 0;
  add(chunk: Uint8Array): void {
    this.chunks.push(chunk);
    this.bytes += chunk.byteLength;
  }
}

/**
 * The stage of a lake that has no room for a value of unknown size (no inode for a temp file, or
 * already past its limits): it writes nothing, holds the bytes in memory up to HOLD_PAST_LIMIT, and at
 * commit answers `existed` if the lake has the key, else `refused`, handing every byte back.
 */
export class HeldStage implements Stage {
  readonly #held = new Held();
  #state: 'open' | 'refused' | 'closed' = 'open';
  constructor(
    private readonly find: (key: string) => Promise<Found>,
    private readonly reason: string,
  ) {}

  async push(chunk: Uint8Array): Promise<boolean> {
    if (this.#state !== 'open') throw new WriteError('push after the stage was refused or closed');
    this.#held.add(chunk);
    if (this.#held.bytes <= HOLD_PAST_LIMIT) return true;
    this.#state = 'refused';
    return false;
  }

  async commit(key: string): Promise<CommitResult> {
    if (this.#state !== 'open') throw new WriteError('commit after the stage was refused or closed');
    const found = await this.find(key).catch(() => undefined);
    if (found?.kind === 'blob' && found.size === this.#held.bytes) {
      await this.abort();
      return { status: 'existed' };
    }
    this.#state = 'refused';
    return { status: 'refused', reason: this.reason };
  }

  async *reclaim(): AsyncIterable<Uint8Array> {
    if (this.#state !== 'refused') throw new WriteError('reclaim is only for a refused stage');
    this.#state = 'closed';
    yield* this.#held.chunks;
  }

  async abort(): Promise<void> {
    this.#state = 'closed';
    this.#held.chunks.length = 0;
  }
}

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
  /**
   * The write in flight, settled as its outcome (never rejecting): it is awaited only by the next
   * push, commit or abort, and a write that fails while the caller waits for its source (a slow pipe)
   * must not be a rejection nobody listens to, which kills the process.
   */
  #pending: Promise<{ error: unknown } | undefined> = Promise.resolve(undefined);
  #inflight: { chunk: Uint8Array; at: number } | undefined;
  /** The key of a commit that was refused after fsync or close failed: reclaim checks the bytes against it. */
  #suspectKey: string | undefined;
  /** Bytes accepted so far. */
  #bytes = 0;
  /** Bytes known to be in the temp file (a failed write leaves less than accepted). */
  #fileBytes = 0;
  #nextSpaceCheck: number;
  #headroom: number;
  #usedAtStart: number;
  /** Accepted bytes that are not in the temp file, in order, kept for reclaim. */
  readonly #held = new Held();
  /** Why the value cannot be stored here (a limit was passed), once it cannot: it may still be `existed`. */
  #over: string | undefined;
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

  /**
   * A stage over a temp file that already holds the whole value (`bytes` of it), made by the lake
   * itself (a kernel copy or a clone, kernel-copy.ts): commit publishes it with every rule of a
   * written one.
   */
  static adopt(ctx: StageContext, tmp: string, fh: FileHandle, bytes: number): DiskStage {
    const stage = new DiskStage(ctx, tmp, fh, undefined, Number.POSITIVE_INFINITY, 0);
    stage.#bytes = bytes;
    stage.#fileBytes = bytes;
    return stage;
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
    if (!ctx.tree.ownGroup) await fh.chown(-1, ctx.tree.gid).catch(() => undefined);
    return new DiskStage(ctx, tmp, fh, key, headroom, used);
  }

  async push(chunk: Uint8Array): Promise<boolean> {
    if (this.#state !== 'open') throw new WriteError('push after the stage was refused or closed');
    const at = this.#bytes;
    this.#bytes += chunk.byteLength;
    if (this.#over === undefined) {
      this.#over = await this.#limitPassed(at, this.#bytes);
      // One write in flight behind the caller: hashing the next chunk overlaps with this write.
      if (!(await this.#settle())) this.#over ??= 'the disk is full';
      if (this.#over === undefined) {
        this.#inflight = { chunk, at };
        this.#pending = writeFully(this.#fh, chunk, at).then(
          () => undefined,
          (error: unknown) => ({ error }),
        );
        return true;
      }
    }
    // Past a limit: held in memory until commit tells whether the lake has the value already.
    this.#held.add(chunk);
    if (this.#held.bytes <= HOLD_PAST_LIMIT) return true;
    this.#state = 'refused';
    return false;
  }

  /** Why `after` bytes cannot be stored (max_size, the free space reserve), or undefined while they can. */
  async #limitPassed(at: number, after: number): Promise<string | undefined> {
    const { maxSize } = this.#ctx;
    if (maxSize !== undefined && this.#usedAtStart + after > maxSize)
      return `the lake's max_size of ${maxSize} bytes is reached`;
    if (after >= this.#nextSpaceCheck) {
      this.#nextSpaceCheck = after + SPACE_CHECK_EVERY;
      this.#headroom = at + (await this.#ctx.headroom());
    }
    if (after > this.#headroom) return "the disk's free space is down to the lake's reserve";
    return undefined;
  }

  /** Waits for the write in flight; false when the disk filled up under it. */
  async #settle(): Promise<boolean> {
    const inflight = this.#inflight;
    const outcome = await this.#pending;
    this.#inflight = undefined;
    this.#pending = Promise.resolve(undefined);
    if (!outcome) {
      if (inflight) {
        this.#fileBytes = inflight.at + inflight.chunk.byteLength;
        // Written, and the stage's alone (the contract): its reader may reuse the memory.
        recycle(inflight.chunk);
      }
      return true;
    }
    if (!inflight || !isFull(outcome.error)) throw outcome.error;
    // A full disk is a refusal, not an error: keep the chunk so the value can go elsewhere. The file
    // may hold part of it; reclaim reads the file only up to the bytes known to be whole.
    this.#fileBytes = inflight.at;
    this.#held.add(inflight.chunk);
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
      if (!(await this.#settle())) this.#over ??= 'the disk is full';
      if (this.#over !== undefined) return this.#refusedUnlessStored(key, this.#over);
      if (this.#ctx.fsync) await this.#fh.sync();
      await this.#fh.close();
    } catch (e) {
      if (isFull(e)) {
        // fsync or close (NFS reports there) found the disk full: the page cache may have dropped
        // bytes, so the replay is checked against the key.
        this.#suspectKey = key;
        return this.#refusedUnlessStored(key, 'the disk is full');
      }
      await this.abort();
      throw e;
    }
    const { ledger, maxSize } = this.#ctx;
    if (ledger && maxSize !== undefined) {
      let reserved: boolean;
      try {
        reserved = await ledger.reserve(this.#bytes, maxSize);
      } catch (e) {
        if (!isFull(e)) {
          await this.abort();
          throw e;
        }
        return this.#refusedUnlessStored(key, 'the disk is full');
      }
      if (!reserved)
        return this.#refusedUnlessStored(key, `the lake's max_size of ${maxSize} bytes is reached`);
    }
    this.#state = 'closed';
    let result: CommitResult;
    try {
      result = await this.#publish(key, final);
    } catch (e) {
      await ledger?.release(this.#bytes);
      // No room for the blob's folder or name: refused, and the temp file still holds every byte.
      if (isFull(e)) return this.#refusedUnlessStored(key, 'the disk is full');
      await unlink(this.#tmp).catch(() => undefined);
      throw e;
    }
    if (result.status === 'existed') await ledger?.release(this.#bytes);
    await unlink(this.#tmp).catch(() => undefined);
    if (result.status === 'stored') await this.#ctx.published(key);
    return result;
  }

  /**
   * About to refuse for lack of room: a value that is already stored is no refusal, whatever the
   * free space, and one look at the key's place (no second write) tells. A blob of another size
   * would need replacing, which a full disk cannot do: refused.
   */
  async #refusedUnlessStored(key: string, reason: string): Promise<CommitResult> {
    this.#state = 'refused';
    const found = await this.#ctx.find(key).catch(() => undefined);
    if (found?.kind === 'blob' && found.size === this.#bytes) {
      await this.#drop();
      return { status: 'existed' };
    }
    return { status: 'refused', reason };
  }

  async #publish(key: string, final: string): Promise<CommitResult> {
    for (let attempt = 1; ; attempt++) {
      const last = attempt >= PUBLISH_ATTEMPTS;
      await this.#ctx.tree.ensure(dirname(final));
      // A folder on the way that is a link would put the blob outside the lake: move it aside first.
      const folder = await this.#ctx.foreignFolder(key);
      if (folder?.kind === 'foreign') {
        if (last) throw new WriteError(`cannot publish ${key}: ${folder.entry.path} keeps being no folder`);
        await this.#ctx.moveAside(folder.entry.path);
        this.#ctx.tree.forget();
        continue;
      }
      try {
        await link(this.#tmp, final);
        if (this.#ctx.fsync) await syncDir(dirname(final));
        return { status: 'stored' };
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        // Filesystems without hard links (some FUSE and SMB mounts): rename, after a look.
        const noLinks = code === 'EPERM' || code === 'ENOTSUP' || code === 'EOPNOTSUPP' || code === 'EMLINK';
        if (code === 'EEXIST' || (noLinks && (await exists(final)))) {
          const verdict = await this.#existing(key, final);
          if (verdict === 'same') return { status: 'existed' };
          // 'gone': the blob link saw was deleted before it could be examined (a racing delete), so
          // the write was 'existed' at that moment; trying again stores it. 'replaced': the place was
          // taken by a corrupt blob or a foreign entry, now moved aside.
          if (!last) continue;
          // Deletes kept winning: saying 'existed' now would claim a blob that is not there.
          throw new WriteError(
            `cannot publish ${key}: its place keeps being ${verdict === 'gone' ? 'emptied by deletes' : 'taken by something else'}; try again`,
          );
        }
        if (noLinks) {
          await rename(this.#tmp, final);
          return { status: 'stored' };
        }
        if (code === 'ENOENT' && !last) {
          this.#ctx.tree.forget(); // a folder was removed behind our back
          continue;
        }
        throw e;
      }
    }
  }

  /**
   * The key's place is taken. By the same value when the blob has the same size (we trust the
   * digest rather than re-read the blob on every duplicate write). By a blob of another size:
   * either it is corrupt (it no longer hashes to its key), and is moved aside for ours, or it is
   * intact and this is a true collision. By something that is no blob (a link, a FIFO, …): moved
   * aside. Or by nothing any more: deleted since it was seen.
   */
  async #existing(key: string, final: string): Promise<'same' | 'replaced' | 'gone'> {
    const found = await this.#ctx.find(key);
    if (found.kind === 'missing') return 'gone';
    if (found.kind === 'foreign') {
      const { path } = found.entry;
      if (path === final || path.startsWith(final + sep)) await this.#ctx.quarantine(key);
      else await this.#ctx.moveAside(path);
      return 'replaced';
    }
    if (found.size === this.#bytes) return 'same';
    const d = this.#ctx.digest;
    if (!d)
      throw new CollisionError(key, `the stored blob has ${found.size} bytes, the new value ${this.#bytes}`);
    let actual: string;
    try {
      actual = await hashFile(found.path, d);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ELOOP') return 'gone'; // deleted, or swapped, meanwhile
      throw e;
    }
    if (actual === key) {
      throw new CollisionError(
        key,
        `the stored blob (${found.size} bytes) and the new value (${this.#bytes} bytes) both hash to it`,
      );
    }
    await this.#ctx.quarantine(key);
    return 'replaced';
  }

  async *reclaim(): AsyncIterable<Uint8Array> {
    if (this.#state !== 'refused') throw new WriteError('reclaim is only for a refused stage');
    this.#state = 'closed';
    const d = this.#ctx.digest;
    const check = this.#suspectKey !== undefined && d ? d.create() : undefined;
    try {
      await this.#fh.close().catch(() => undefined);
      if (this.#fileBytes > 0) {
        const fh = await open(this.#tmp, 'r');
        try {
          for await (const chunk of readChunks(fh, undefined, this.#fileBytes)) {
            check?.update(chunk);
            yield chunk;
          }
        } finally {
          await fh.close();
        }
      }
      for (const chunk of this.#held.chunks) {
        check?.update(chunk);
        yield chunk;
      }
      if (check && check.digest('hex') !== this.#suspectKey) {
        throw new WriteError(
          `the refused value could not be read back intact from ${this.#tmp}: the disk failed while it was synced`,
        );
      }
    } finally {
      await unlink(this.#tmp).catch(() => undefined);
    }
  }

  async abort(): Promise<void> {
    if (this.#state === 'closed') return;
    await this.#drop();
  }

  async #drop(): Promise<void> {
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
  // Found to be a regular file by lstat: were it swapped for a link or a FIFO since, it is not followed or waited on.
  const fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  try {
    return await hashHandle(fh, d);
  } finally {
    await fh.close();
  }
}
