import type { BigIntStats } from 'node:fs';
import { constants, statSync } from 'node:fs';
import { copyFile, type FileHandle, open, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Digest } from '../../digest.js';
import { KeyMismatchError } from '../../errors.js';
import { hashHandle } from '../../util/hash-file.js';
import { localPath } from '../../util/local-fs.js';
import { ownedName, sleep } from '../../util/process.js';
import type { IngestResult, OpOptions } from '../contract.js';
import { DiskStage, type StageContext } from './stage.js';
import { TEMP_PREFIX } from './temp.js';

/** Smaller files are read and written in one pass: a kernel copy saves nothing worth its syscalls. */
export const KERNEL_COPY_MIN = 8 << 20;

/**
 * A change to a file sets its ctime from a clock that ticks every few milliseconds (jiffies), so a
 * second change within the tick of the first keeps the same ctime. A file whose ctime is at least
 * this old has had its last tick: any change from now on gives it a new ctime.
 */
const SETTLED_MS = 20n;

/** How the lake's filesystem copies: by sharing blocks (a clone), or by the kernel copying them. */
export type CopyMode = 'clone' | 'copy';

export type CopyOutcome = IngestResult | 'no-clones' | null;

/**
 * Stores a large regular file by path with the copy made by the kernel. Where the filesystem shares
 * blocks copy-on-write (FICLONE: XFS, btrfs), the copy is a clone, made in constant time, and a write
 * costs one read and hash of the file, like `openssl dgst`. Elsewhere (mode `copy`) the kernel copies
 * the file (copy_file_range, which libuv's copyfile uses) while the source is hashed: on ext4 that
 * measured 0.75–0.79 s per GiB, below `openssl dgst` (0.87 s), where hashing and then copying (Python
 * tarn's order) took 1.06–1.15 s and one pass through write(2) 2.1–2.4 s (docs/performance.md).
 *
 * The bytes hashed are the source's, so the copy is only published under their key when the source
 * provably did not change while it was copied and read: its inode, size, mtime and ctime are the
 * same before the copy began and after the last byte was hashed, and its ctime was older than one
 * clock tick when it was first looked at (a file changed in the last milliseconds is waited on
 * until it is not), so any write in between would have given it a new ctime. Otherwise the copy
 * itself is hashed, which is what a copy holds whatever the source did. (A process that writes
 * through a shared mapping to pages it already dirtied changes a file without a new ctime: that
 * is the one change this proof cannot see, and a verified read catches the blob it would leave.)
 *
 * The source is opened with O_NONBLOCK and checked to be a regular file, then copied through
 * /proc/self/fd, so a FIFO swapped in for it is never waited on. Null: not a regular file of at
 * least KERNEL_COPY_MIN bytes, on another filesystem (for a clone), no room for it in the lake, or
 * a refusal that the general path answers with its rules (the caller then writes the value in one
 * pass). `no-clones`: the lake's
 * filesystem cannot clone; the lake copies from then on (mode `copy`).
 */
export async function cloneIn(
  ctx: StageContext,
  path: string,
  digest: Digest,
  mode: CopyMode,
  options: OpOptions & { key?: string; fits: (size: number) => Promise<boolean> },
): Promise<CopyOutcome> {
  // Looked at before it is opened: opening a FIFO, even at once with O_NONBLOCK, could take a
  // writer's bytes from the one-pass read that follows. Synchronously under a local mount, since
  // every write by path asks here first and a small file is done in microseconds after.
  if (!(await isLargeFile(path))) return null;
  let source: FileHandle;
  try {
    source = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch {
    return null; // the general path opens it again and says why it cannot, as a SourceError
  }
  const tmp = join(ctx.tmpDir, ownedName(TEMP_PREFIX));
  let fh: FileHandle | undefined;
  let stage: DiskStage | undefined;
  try {
    let before = await source.stat({ bigint: true });
    if (!before.isFile() || before.size < BigInt(KERNEL_COPY_MIN)) return null;
    if (!(await options.fits(Number(before.size)))) return null;
    const age = BigInt(Date.now()) * 1_000_000n - before.ctimeNs;
    if (age < SETTLED_MS * 1_000_000n) {
      await sleep(Number(SETTLED_MS - age / 1_000_000n) + 1);
      before = await source.stat({ bigint: true });
    }
    let key: string | undefined;
    const from = `/proc/self/fd/${source.fd}`;
    if (mode === 'clone') {
      // The clone first: constant time where it works, and a filesystem that cannot clone says
      // so before anything was read. Then the source, whose pages are likely cached (the clone's
      // are not), is hashed.
      try {
        await copyFile(from, tmp, constants.COPYFILE_EXCL | constants.COPYFILE_FICLONE_FORCE);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code ?? '';
        if (code === 'EXDEV') return null; // the file is on another filesystem
        if (['EOPNOTSUPP', 'ENOTSUP', 'ENOTTY', 'EINVAL', 'ENOSYS'].includes(code)) return 'no-clones';
        return null; // no room for the clone's metadata, a lake we may not write: the general path has the rules
      }
      key = await hashHandle(source, digest, options.signal);
    } else {
      // The kernel copies (copy_file_range, in a thread of the pool) while this thread hashes the
      // source: the two overlap on two cores, and the proof below covers the whole of both.
      const [hashed, copied] = await Promise.allSettled([
        hashHandle(source, digest, options.signal),
        copyFile(from, tmp, constants.COPYFILE_EXCL),
      ]);
      if (hashed.status === 'rejected') throw hashed.reason;
      if (copied.status === 'rejected') return null; // a full disk, a lake we may not write: the general path has the rules
      key = hashed.value;
    }
    const after = await source.stat({ bigint: true });
    fh = await open(tmp, constants.O_RDONLY);
    if (!unchanged(before, after)) key = await hashHandle(fh, digest, options.signal);
    const bytes = Number((await fh.stat({ bigint: true })).size);
    // copyFile gave the copy the source's mode: blobs are read-only, with the lake's group.
    await fh.chmod(ctx.blobMode);
    if (!ctx.tree.ownGroup) await fh.chown(-1, ctx.tree.gid).catch(() => undefined);
    if (key === undefined) return null;
    if (options.key !== undefined && key !== options.key) throw new KeyMismatchError(options.key, key);
    stage = DiskStage.adopt(ctx, tmp, fh, bytes);
    fh = undefined; // the stage closes it
    const result = await stage.commit(key);
    if (result.status === 'refused') return null;
    stage = undefined;
    return { key, size: bytes, status: result.status };
  } finally {
    await source.close().catch(() => undefined);
    await fh?.close().catch(() => undefined);
    await stage?.abort();
    await unlink(tmp).catch(() => undefined);
  }
}

async function isLargeFile(path: string): Promise<boolean> {
  try {
    const st = localPath(path) ? statSync(path) : await stat(path);
    return st.isFile() && st.size >= KERNEL_COPY_MIN;
  } catch {
    return false;
  }
}

function unchanged(a: BigIntStats, b: BigIntStats): boolean {
  return a.ino === b.ino && a.size === b.size && a.mtimeNs === b.mtimeNs && a.ctimeNs === b.ctimeNs;
}
