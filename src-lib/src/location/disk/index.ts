import { existsSync, lstatSync, mkdirSync, rmSync, statfsSync, statSync } from 'node:fs';
import { lstat, lutimes, mkdir, rename, rm, statfs, unlink, writeFile } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import { assertHexKey, type Digest, digest } from '../../digest.js';
import { ConfigError, throwIfAborted, WriteError } from '../../errors.js';
import { onLocalFilesystem, SYNC_MAX } from '../../util/local-fs.js';
import { parseSize } from '../../util/size.js';
import { FileValue, LoadedFileValue } from '../../value.js';
import type {
  Flags,
  IngestOptions,
  IngestResult,
  Lease,
  Location,
  OpOptions,
  ReadOpOptions,
  Stage,
  StageOptions,
  Value,
} from '../contract.js';
import { BlobFinder, type ForeignEntry, type Found, under } from './blob.js';
import { CONFIG_NAME, type LakeConfig, readLakeConfig, writeLakeConfig } from './config.js';
import { isFull, isReadOnly } from './errno.js';
import { type CopyMode, cloneIn } from './kernel-copy.js';
import { checkLevelsFit, fixedHexLength, keyToParts } from './layout.js';
import { diskLease } from './lease.js';
import { Ledger, type Usage } from './ledger.js';
import { SmallStage, type SmallStageContext } from './small-stage.js';
import { DiskStage, HeldStage, type StageContext } from './stage.js';
import { sweepTemp } from './temp.js';
import { Tree } from './tree.js';

export type { ForeignEntry, ForeignReason } from './blob.js';

export interface DiskOptions {
  /** Create the folder and its config.yml when missing (default true). */
  create?: boolean;
  /** Folder layout for a new lake (default [1, -1]); must match an existing lake's. */
  levels?: number[];
  /** Digest recorded in a new lake's config.yml when it is not sha256. */
  algorithm?: string;
  /** Byte cap of a new lake (config.yml `max_size`), e.g. `500G`; must match an existing lake's. */
  maxSize?: number | string;
  /** Free space to leave on the filesystem (config.yml `free_disk_size`); must match an existing lake's. */
  minFreeSpace?: number | string;
  /** fsync each blob and its folder before it becomes visible (survives power loss; slower). */
  fsync?: boolean;
  /** Temp files of other hosts (or of Python tarn) untouched this long are swept. Default 24 h. */
  staleTempAfterMs?: number;
  /**
   * Read blobs of up to 64 KiB with synchronous syscalls on the calling thread (open, fstat, one
   * read, close: ~10 µs on a local disk whose blocks are cached) instead of four round trips through
   * libuv's thread pool (~30 µs each, and more in main-thread work). A synchronous call blocks the
   * event loop for as long as the filesystem takes, which on a network filesystem is a network
   * round trip per read; so the default (undefined) is on only when the lake's filesystem is a
   * local one known to the lake (ext2/3/4, XFS, btrfs, tmpfs, ZFS, F2FS, overlayfs), and off for
   * NFS, SMB, FUSE and anything unknown. Larger blobs are always read through the thread pool.
   * Also decides `contains` (one or two lstats).
   */
  syncReads?: boolean;
  /**
   * Write values of known size up to 64 KiB with synchronous syscalls (look at the key's place;
   * else temp file, write, close, link, unlink), for the same reason and with the same default as
   * `syncReads`. A lake with a `max_size` keeps the general path (its ledger is a locked file).
   * Anything unusual met on the way (a full disk, a racing writer, a link where a folder belongs)
   * hands the value to the general path, which has the rules for it.
   */
  syncWrites?: boolean;
  /**
   * Store a large file (at least 8 MiB) written by path with the kernel making the copy: a clone
   * where the lake's filesystem shares blocks copy-on-write (XFS, btrfs), else the kernel's copy
   * after the source was hashed (kernel-copy.ts says when the copy is published under the source's
   * hash, and when the copy is hashed itself). Default true. False: always one pass that reads,
   * hashes and writes.
   */
  kernelCopy?: boolean;
}

/** The folders under tools/ that the lake writes into. */
const TOOL_FOLDERS = ['usage', 'labels', 'quarantine', 'locks'];

function lstatOrNull(path: string): ReturnType<typeof lstatSync> | null {
  try {
    return lstatSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

/**
 * A lake folder, laid out exactly as Python tarn's DiskDict lays it out (config.yml, `2c/f24dba…`
 * blobs, `.tmp/`, `tools/`), so both implementations read and write the same lakes.
 */
export class DiskLocation implements Location {
  readonly kind = 'disk';
  readonly target: string;
  readonly config: LakeConfig;
  readonly root: string;
  readonly #tmp: string;
  readonly #tools: string;
  readonly #tree: Tree;
  readonly #ctx: StageContext;
  readonly #ledger: Ledger | undefined;
  readonly #staleAfter: number;
  readonly #blobs: BlobFinder;
  readonly #digest: Digest | undefined;
  /** Small blobs are read with synchronous syscalls (DiskOptions.syncReads). */
  readonly #syncReads: boolean;
  /** Small values of known size are written with synchronous syscalls (DiskOptions.syncWrites). */
  readonly #syncWrites: boolean;
  readonly #small: SmallStageContext;
  /** How a large file written by path is copied in (kernel-copy.ts): cloned until the filesystem says it cannot. */
  #copies: CopyMode | 'off';
  #swept = false;

  constructor(root: string, options: DiskOptions = {}) {
    this.root = resolve(root);
    this.target = this.root;
    const create = options.create ?? true;
    // Bad options fail before anything is created.
    const wantedDigest = options.algorithm === undefined ? undefined : digest(options.algorithm);
    const wanted = {
      levels: options.levels,
      algorithm: options.algorithm,
      maxSize: options.maxSize === undefined ? undefined : parseSize(options.maxSize, ['maxSize']),
      minFreeSpace:
        options.minFreeSpace === undefined ? undefined : parseSize(options.minFreeSpace, ['minFreeSpace']),
    };
    // Node refuses a NUL in a path with a TypeError; no file system takes one: the config is wrong.
    if (this.root.includes('\0'))
      throw new ConfigError(
        `${JSON.stringify(root)} cannot be a lake folder: a path cannot contain a NUL character`,
      );
    let existing: ReturnType<typeof statSync> | undefined;
    let made = false;
    try {
      existing = statSync(this.root);
    } catch (e) {
      // Only a missing folder is created. A root that cannot be one (below a file, a name too long, a
      // folder we may not look into) is the config's fault, as is one that cannot be created.
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw badRoot(e, this.root);
      if (!create) throw new ConfigError(`no lake at ${this.root}; create it with \`tarn init ${root}\``);
      try {
        makeFolders(this.root);
      } catch (e) {
        throw badRoot(e, this.root);
      }
      made = true;
      existing = statSync(this.root);
    }
    if (!existing.isDirectory()) throw new ConfigError(`${this.root} is not a folder`);
    const mode = Number(existing.mode) & 0o777;
    this.#tree = new Tree(mode, Number(existing.gid));

    let config = readLakeConfig(this.root);
    if (!config) {
      if (!create)
        throw new ConfigError(`${this.root} has no config.yml; create the lake with \`tarn init\``);
      try {
        config = writeLakeConfig(this.root, wanted, mode);
      } catch (e) {
        // An invalid option (levels, digest) must not leave an empty folder that is no lake.
        if (made) rmSync(this.root, { recursive: true, force: true });
        throw e;
      }
    }
    checkAgrees(config, wanted, this.root);
    // Where the lake learns its digest: config.yml's hash, else the algorithm it is opened with, else
    // Python's default, sha256. Keys of that digest must fit the levels, or the lake would refuse
    // every key and list none of its blobs. (A recorded hash was checked when config.yml was parsed;
    // an algorithm that contradicts it is refused by HashKeyStorage, which sees every lake of a tree.)
    if (!config.digest) {
      checkLevelsFit(
        config.levels,
        wantedDigest ?? digest('sha256'),
        join(this.root, CONFIG_NAME),
        wantedDigest ? 'the algorithm given' : 'the default, sha256: config.yml records no hash',
      );
    }
    this.config = config;
    // A layout of fixed length admits one digest: sha256 unless recorded or given (checked just above).
    this.#digest =
      config.digest ??
      wantedDigest ??
      (fixedHexLength(config.levels) === undefined ? undefined : digest('sha256'));
    this.#blobs = new BlobFinder(this.root);
    const local =
      options.syncReads === undefined || options.syncWrites === undefined
        ? onLocalFilesystem(this.root)
        : false;
    this.#syncReads = options.syncReads ?? local;
    this.#syncWrites = options.syncWrites ?? local;
    // Clones need /proc/self/fd (the source is cloned through its descriptor) and a lake we can write.
    this.#copies = (options.kernelCopy ?? true) && existsSync('/proc/self/fd') ? 'clone' : 'off';

    this.#tmp = join(this.root, '.tmp');
    this.#tools = join(this.root, 'tools');
    // The lake writes into these (temp files, quarantined blobs, locks, the size ledger): one that is
    // a link would make it create, move or delete files elsewhere. Refused at open; `.tmp` is also
    // checked before every sweep, for one swapped in later.
    for (const dir of [this.#tmp, this.#tools, ...TOOL_FOLDERS.map((f) => join(this.#tools, f))]) {
      const st = lstatOrNull(dir);
      if (st && !st.isDirectory()) {
        throw new ConfigError(
          `${dir} is ${st.isSymbolicLink() ? 'a symbolic link' : 'not a folder'}; a lake never follows one out of itself: remove it (the lake recreates it)`,
        );
      }
    }
    // Python tarn creates these on open, with the root's mode and group, and expects them; so do we.
    for (const dir of [this.#tmp, join(this.#tools, 'usage'), join(this.#tools, 'labels')]) {
      try {
        this.#tree.ensureSync(dir);
      } catch (e) {
        // A lake this user may only read is still read; its writes fail when they are tried.
        if (!isReadOnly(e)) throw e;
      }
    }
    this.#staleAfter = options.staleTempAfterMs ?? 24 * 3600_000;
    this.#ledger = config.maxSize === undefined ? undefined : new Ledger(this.#tools, () => this.#count());
    this.#ctx = {
      tmpDir: this.#tmp,
      tree: this.#tree,
      blobMode: 0o444 & mode,
      fsync: options.fsync ?? false,
      digest: this.#digest,
      ledger: this.#ledger,
      maxSize: config.maxSize,
      headroom: () => this.#headroom(),
      pathOf: (key) => this.pathOf(key),
      find: (key) => this.#find(key),
      foreignFolder: (key) => this.#blobs.foreignFolder(keyToParts(key, this.config.levels)),
      quarantine: (key) => this.quarantine(key),
      moveAside: (path) => this.#moveAside(path, path.slice(this.root.length + 1).replaceAll(sep, '')),
      published: async (key) => {
        if (config.statUsage) await this.#mark(key);
      },
    };
    this.#small = {
      ...this.#ctx,
      findSync: (key) => this.#blobs.findSync(keyToParts(key, this.config.levels)),
      foreignFolderSync: (key) => this.#blobs.foreignFolderSync(keyToParts(key, this.config.levels)),
    };
  }

  /**
   * The digest the lake is keyed by, when the lake fixes it: recorded in config.yml (`hash`), given as
   * `algorithm`, or sha256 for a fixed layout (`levels` without -1) that records none, as Python
   * assumes. Undefined for a `[…, -1]` lake that records none: it takes keys of any digest.
   */
  get digest(): Digest | undefined {
    return this.#digest;
  }

  /** For `describe`: the folder layout and the caps. */
  describe(): Flags {
    const c = this.config;
    return {
      levels: c.levels,
      ...(c.maxSize === undefined ? {} : { maxSize: c.maxSize }),
      ...(c.minFreeSpace ? { minFreeSpace: c.minFreeSpace } : {}),
    };
  }

  /** The blob's path (whether or not it exists). Throws InvalidKeyError for a malformed key. */
  pathOf(key: string): string {
    return under(this.root, keyToParts(key, this.config.levels));
  }

  async read(key: string, options?: ReadOpOptions): Promise<Value | null> {
    throwIfAborted(options?.signal);
    const parts = keyToParts(key, this.config.levels);
    const small = this.#syncReads ? this.#blobs.readSmallSync(parts, SYNC_MAX) : undefined;
    if (small === null) return null;
    if (small) {
      if (this.config.statUsage && options?.touch !== false) await this.#mark(key);
      return new LoadedFileValue(small.path, small.bytes);
    }
    const blob = await this.#blobs.open(parts);
    if (!blob) return null;
    if (this.config.statUsage && options?.touch !== false) await this.#mark(key);
    return FileValue.fromHandle(blob.path, blob.size, blob.fh);
  }

  /**
   * A large file by path, copied in by the kernel (a clone where the filesystem shares blocks) and
   * hashed from the source (kernel-copy.ts); null otherwise (HashKeyStorage then writes it in one pass).
   */
  async ingest(path: string, options: IngestOptions): Promise<IngestResult | null> {
    throwIfAborted(options.signal);
    if (this.#copies === 'off') return null;
    const digest = this.#digest ?? options.digest;
    if (digest.name !== options.digest.name) return null; // HashKeyStorage refuses this tree anyway
    const ctx = this.#ctx.digest ? this.#ctx : { ...this.#ctx, digest };
    const fits = (size: number) => this.#fits(size);
    let outcome = await cloneIn(ctx, path, digest, this.#copies, { ...options, fits });
    if (outcome === 'no-clones') {
      this.#copies = 'copy';
      outcome = await cloneIn(ctx, path, digest, 'copy', { ...options, fits });
    }
    return outcome === 'no-clones' ? null : outcome;
  }

  async contains(key: string, options?: OpOptions): Promise<boolean> {
    throwIfAborted(options?.signal);
    if (this.#syncReads) return this.#blobs.findSync(keyToParts(key, this.config.levels)).kind === 'blob';
    return (await this.#find(key)).kind === 'blob';
  }

  async stage(options: StageOptions = {}): Promise<Stage | null> {
    throwIfAborted(options.signal);
    if (options.key !== undefined) this.pathOf(options.key); // validate before any byte moves
    if (!this.#swept) {
      this.#swept = true;
      await sweepTemp(this.#tmp, this.#staleAfter);
    }
    // A small value of known size on a local lake without a ledger: written synchronously at commit.
    const small =
      this.#syncWrites &&
      this.#ledger === undefined &&
      options.size !== undefined &&
      options.size <= SYNC_MAX;
    const headroom = small ? this.#headroomSync() : await this.#headroom();
    let used = 0;
    const { maxSize } = this.config;
    if (this.#ledger && maxSize !== undefined) {
      used = (await this.#ledger.read()).bytes;
      if (used + (options.size ?? 0) > maxSize)
        return this.#noRoom(options, `the lake's max_size of ${maxSize} bytes is reached`);
    }
    if ((options.size ?? 0) > headroom)
      return this.#noRoom(options, "the disk's free space is down to the lake's reserve");
    // The lake's own context, unless the caller's digest fills a gap in it (made when needed).
    const ctx = () =>
      this.#ctx.digest || !options.digest ? this.#ctx : { ...this.#ctx, digest: options.digest };
    if (small)
      return new SmallStage(this.#small, options.key, () =>
        DiskStage.create(ctx(), options.key, headroom, used),
      );
    try {
      return await DiskStage.create(ctx(), options.key, headroom, used);
    } catch (e) {
      // No inode left for the temp file: the disk is full.
      if (isFull(e)) return this.#noRoom(options, 'the disk is full');
      throw e;
    }
  }

  /**
   * No room for the value. One of known size is refused at once (its writer can tell from its key
   * whether it is stored; HashKeyStorage does). One of unknown size may still be a value the lake
   * has, which only its key, known at commit, can tell: a stage that holds it in memory answers then.
   */
  #noRoom(options: StageOptions, reason: string): Stage | null {
    if (options.size !== undefined) return null;
    return new HeldStage((key) => this.#find(key), reason);
  }

  async delete(key: string, options?: OpOptions): Promise<boolean> {
    throwIfAborted(options?.signal);
    const path = this.pathOf(key);
    const found = await this.#find(key);
    if (found.kind === 'missing') return false;
    if (found.kind === 'foreign') {
      // A link, FIFO, … where the blob belongs is removed itself (a link never takes what it points
      // to along). A foreign folder above the blob is left: it also holds the places of other keys.
      if (!within(found.entry.path, path)) return false;
      await rm(path, { recursive: true, force: true });
      return true;
    }
    try {
      if (found.path === path) await unlink(path);
      else await rm(path, { recursive: true }); // Python's legacy <key>/data
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false; // another process won
      throw e;
    }
    await this.#ledger?.release(found.size);
    await rm(this.#usageMark(key), { force: true });
    return true;
  }

  async *keys(options?: OpOptions): AsyncIterable<string> {
    for await (const entry of this.#blobs.walk(this.config.levels, options?.signal)) {
      if (entry.key !== undefined) yield entry.key;
    }
  }

  /**
   * What sits where a blob or a folder of the lake belongs without being one: symbolic links, FIFOs,
   * sockets, device nodes, files in place of folders, legacy folders without a regular `data`. The
   * lake never reads or follows them; `HashKeyStorage.verify` reports them.
   */
  async *foreign(options?: OpOptions): AsyncIterable<ForeignEntry> {
    for await (const entry of this.#blobs.walk(this.config.levels, options?.signal)) {
      if (entry.foreign) yield entry.foreign;
    }
  }

  async touch(key: string, options?: OpOptions): Promise<boolean> {
    throwIfAborted(options?.signal);
    const found = await this.#find(key);
    if (found.kind !== 'blob') return false;
    if (this.config.statUsage) {
      await this.#mark(key);
      return true;
    }
    // Without a tracker the blob's own mtime records the use; a blob owned by someone else keeps its
    // time. lutimes: were the blob swapped for a link since it was found, the link's target keeps its time.
    const now = new Date();
    await lutimes(found.path, now, now).catch(() => undefined);
    return true;
  }

  /** A lease (lock file under tools/locks/), e.g. for single-flight memoisation across processes. */
  async lease(name: string, ttlMs: number, options?: OpOptions): Promise<Lease | null> {
    throwIfAborted(options?.signal);
    assertHexKey(name);
    return diskLease(join(this.#tools, 'locks'), name, ttlMs);
  }

  /**
   * Moves a corrupt blob (or whatever foreign entry sits at the key's place) to tools/quarantine/
   * (Python tarn lists nothing under tools/). Throws WriteError when it cannot be moved, e.g. on a lake
   * this user may only read.
   */
  async quarantine(key: string): Promise<string | undefined> {
    const path = this.pathOf(key);
    const found = await this.#find(key);
    // A foreign folder above the key is not this key's to move (it is moved aside by a write under it).
    if (found.kind === 'missing' || (found.kind === 'foreign' && !within(found.entry.path, path)))
      return undefined;
    const to = await this.#moveAside(path, key);
    if (to !== undefined && found.kind === 'blob') await this.#ledger?.release(found.size);
    return to;
  }

  /**
   * Housekeeping: removes temp files no live writer will finish, and recounts a capped lake's
   * byte total (dropping the slack that killed writers leave). On a lake this user may only read,
   * what needs writing is skipped and `notWritable` says why.
   */
  async sweep(): Promise<{ tempFilesRemoved: number; usage?: Usage; notWritable?: string }> {
    const tempFilesRemoved = await sweepTemp(this.#tmp, this.#staleAfter);
    try {
      const usage = await this.#ledger?.rebuild();
      return { tempFilesRemoved, usage };
    } catch (e) {
      if (!isReadOnly(e)) throw e;
      return { tempFilesRemoved, notWritable: (e as Error).message };
    }
  }

  async close(): Promise<void> {}

  async #find(key: string): Promise<Found> {
    return this.#blobs.find(keyToParts(key, this.config.levels));
  }

  /** Renames `path` into tools/quarantine/ as `<name>.<time>`; undefined when it is gone already. */
  async #moveAside(path: string, name: string): Promise<string | undefined> {
    const dir = join(this.#tools, 'quarantine');
    const to = join(dir, `${name}.${new Date().toISOString().replace(/[:.]/g, '-')}`);
    try {
      await this.#tree.ensure(dir);
      await rename(path, to);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT' && !(await exists(path))) return undefined;
      throw new WriteError(`cannot move ${path} aside to ${dir}: ${(e as Error).message}`, { cause: e });
    }
    return to;
  }

  /**
   * Records a use in Python's StatUsage marker (an empty, world-writable file whose mtime is the last
   * use). Best effort: a lake this user may not write, or a full disk, keeps the old record, and a read
   * still succeeds. The marker folder is world-writable, so nothing in it is followed: lutimes, O_EXCL,
   * and a marker folder that is a link is left alone.
   */
  async #mark(key: string): Promise<void> {
    const mark = this.#usageMark(key);
    const now = new Date();
    try {
      try {
        await lutimes(mark, now, now);
        return;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      }
      const folder = dirname(mark);
      await mkdir(folder, { recursive: true, mode: 0o777 });
      if (!(await lstat(folder)).isDirectory()) return;
      await writeFile(mark, '', { mode: 0o777, flag: 'wx' });
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (isReadOnly(e) || isFull(e) || code === 'EEXIST' || code === 'ENOENT') return;
      throw e;
    }
  }

  #usageMark(key: string): string {
    return join(this.#tools, 'usage', key.slice(0, 2), key.slice(2));
  }

  async #headroom(): Promise<number> {
    if (this.config.minFreeSpace <= 0) return Number.POSITIVE_INFINITY;
    const s = await statfs(this.root);
    return Number(s.bavail) * Number(s.bsize) - this.config.minFreeSpace;
  }

  /**
   * Whether a value of `size` bytes is within the lake's limits now (max_size, the free space
   * reserve), as `stage` checks them before a byte moves: the kernel copy is not started for a
   * value that its commit would refuse.
   */
  async #fits(size: number): Promise<boolean> {
    const { maxSize } = this.config;
    if (this.#ledger && maxSize !== undefined && (await this.#ledger.read()).bytes + size > maxSize)
      return false;
    return size <= (await this.#headroom());
  }

  /** #headroom on the calling thread: statfs of a local filesystem answers from memory. */
  #headroomSync(): number {
    if (this.config.minFreeSpace <= 0) return Number.POSITIVE_INFINITY;
    const s = statfsSync(this.root);
    return Number(s.bavail) * Number(s.bsize) - this.config.minFreeSpace;
  }

  async #count(): Promise<Usage> {
    let bytes = 0;
    let blobs = 0;
    for await (const key of this.keys()) {
      const found = await this.#find(key);
      if (found.kind === 'blob') {
        bytes += found.size;
        blobs++;
      }
    }
    return { bytes, blobs };
  }
}

/**
 * `mkdir -p` that fails rather than spins: Node's recursive mkdir retries for ever when mkdir answers
 * ENOENT although the parent exists (any root under /proc does), and a config can name such a root.
 */
function makeFolders(dir: string): void {
  const missing: string[] = [];
  for (let d = dir; ; d = dirname(d)) {
    try {
      mkdirSync(d);
      break;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') break;
      if (code !== 'ENOENT' || dirname(d) === d) throw e;
      missing.push(d);
    }
  }
  // Outermost first; its parent exists now, so ENOENT again is final (EEXIST: another process made it).
  for (const d of missing.reverse()) {
    try {
      mkdirSync(d);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
  }
}

/** A lake root that cannot be looked at or created, as a ConfigError naming it with the OS's reason. */
function badRoot(e: unknown, root: string): unknown {
  // ENOENT from mkdir once every parent exists: a place like /proc, where no folder can be made.
  const { code, syscall } = (e ?? {}) as NodeJS.ErrnoException;
  const hint = code === 'ENOENT' && syscall === 'mkdir' ? 'no folder can be created there' : undefined;
  return ConfigError.fromSystemError(e, { what: root, hint }) ?? e;
}

function checkAgrees(
  config: LakeConfig,
  wanted: { levels?: number[]; maxSize?: number; minFreeSpace?: number; algorithm?: string },
  root: string,
): void {
  const where = `${root}/config.yml`;
  if (wanted.levels && JSON.stringify(wanted.levels) !== JSON.stringify(config.levels)) {
    throw new ConfigError(
      `levels ${JSON.stringify(wanted.levels)} differ from ${JSON.stringify(config.levels)} in ${where}`,
      ['levels'],
    );
  }
  if (wanted.maxSize !== undefined && wanted.maxSize !== config.maxSize) {
    throw new ConfigError(
      `maxSize ${wanted.maxSize} differs from max_size ${config.maxSize ?? 'unset'} in ${where}; edit config.yml so that every writer enforces the same cap`,
      ['maxSize'],
    );
  }
  if (wanted.minFreeSpace !== undefined && wanted.minFreeSpace !== config.minFreeSpace) {
    throw new ConfigError(
      `minFreeSpace ${wanted.minFreeSpace} differs from free_disk_size ${config.minFreeSpace} in ${where}; edit config.yml`,
      ['minFreeSpace'],
    );
  }
}

async function exists(path: string): Promise<boolean> {
  return lstat(path).then(
    () => true,
    () => false,
  );
}

/** Whether `path` is `place` or inside it. */
function within(path: string, place: string): boolean {
  return path === place || path.startsWith(place + sep);
}
