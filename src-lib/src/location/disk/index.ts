import { mkdirSync, rmSync, statSync } from 'node:fs';
import { mkdir, opendir, rename, rm, stat, statfs, utimes, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { assertHexKey, type Digest } from '../../digest.js';
import { ConfigError, throwIfAborted } from '../../errors.js';
import type { Lease } from '../../lease.js';
import type { Location, OpOptions, ReadOpOptions, Stage, StageOptions, Value } from '../../location.js';
import { parseSize } from '../../util/size.js';
import { FileValue } from '../../value.js';
import { type LakeConfig, readLakeConfig, writeLakeConfig } from './config.js';
import { keyToParts, walkLake } from './layout.js';
import { diskLease } from './lease.js';
import { Ledger, type Usage } from './ledger.js';
import { DiskStage, type StageContext } from './stage.js';
import { sweepTemp } from './temp.js';
import { Tree } from './tree.js';

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
  #swept = false;

  constructor(root: string, options: DiskOptions = {}) {
    this.root = resolve(root);
    this.target = this.root;
    const create = options.create ?? true;
    // Bad options fail before anything is created.
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
    this.config = config;

    this.#tmp = join(this.root, '.tmp');
    this.#tools = join(this.root, 'tools');
    // Python tarn creates these on open, with the root's mode and group, and expects them; so do we.
    for (const dir of [this.#tmp, join(this.#tools, 'usage'), join(this.#tools, 'labels')]) {
      this.#tree.ensureSync(dir);
    }
    this.#staleAfter = options.staleTempAfterMs ?? 24 * 3600_000;
    this.#ledger = config.maxSize === undefined ? undefined : new Ledger(this.#tools, () => this.#count());
    this.#ctx = {
      tmpDir: this.#tmp,
      tree: this.#tree,
      blobMode: 0o444 & mode,
      fsync: options.fsync ?? false,
      digest: config.digest,
      ledger: this.#ledger,
      maxSize: config.maxSize,
      headroom: () => this.#headroom(),
      pathOf: (key) => this.pathOf(key),
      quarantine: (key) => this.quarantine(key),
      published: async (key) => {
        if (config.statUsage) await this.touch(key);
      },
    };
  }

  /** The digest recorded in config.yml, if the lake records one. */
  get digest(): Digest | undefined {
    return this.config.digest;
  }

  /** The blob's path (whether or not it exists). Throws InvalidKeyError for a malformed key. */
  pathOf(key: string): string {
    return join(this.root, ...keyToParts(key, this.config.levels));
  }

  async read(key: string, options?: ReadOpOptions): Promise<Value | null> {
    throwIfAborted(options?.signal);
    const value = await FileValue.open(this.pathOf(key));
    if (value && this.config.statUsage && options?.touch !== false) await this.touch(key);
    return value;
  }

  async contains(key: string, options?: OpOptions): Promise<boolean> {
    throwIfAborted(options?.signal);
    return (await this.#find(key)) !== undefined;
  }

  async stage(options: StageOptions = {}): Promise<Stage | null> {
    throwIfAborted(options.signal);
    if (options.key !== undefined) this.pathOf(options.key); // validate before any byte moves
    if (!this.#swept) {
      this.#swept = true;
      await sweepTemp(this.#tmp, this.#staleAfter);
    }
    const headroom = await this.#headroom();
    let used = 0;
    if (this.#ledger && this.config.maxSize !== undefined) {
      used = (await this.#ledger.read()).bytes;
      if (used + (options.size ?? 0) > this.config.maxSize) return null;
    }
    if ((options.size ?? 0) > headroom) return null;
    return DiskStage.create(
      { ...this.#ctx, digest: this.#ctx.digest ?? options.digest },
      options.key,
      headroom,
      used,
    );
  }

  async delete(key: string, options?: OpOptions): Promise<boolean> {
    throwIfAborted(options?.signal);
    const found = await this.#find(key);
    if (!found) return false;
    const path = this.pathOf(key);
    try {
      await rm(path, { recursive: found.path !== path });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false; // another process won
      throw e;
    }
    await this.#ledger?.release(found.size);
    await rm(this.#usageMark(key), { force: true });
    return true;
  }

  async *keys(options?: OpOptions): AsyncIterable<string> {
    const root = this.root;
    yield* walkLake(
      this.config.levels,
      async function* (folder) {
        let entries: Awaited<ReturnType<typeof opendir>>;
        try {
          entries = await opendir(join(root, folder));
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
          throw e;
        }
        for await (const e of entries) {
          // A blob is a file, or Python tarn's legacy <key>/data folder.
          yield { name: e.name, dir: e.isDirectory(), blob: e.isFile() || e.isDirectory() };
        }
      },
      options?.signal,
    );
  }

  async touch(key: string, options?: OpOptions): Promise<boolean> {
    throwIfAborted(options?.signal);
    const path = this.pathOf(key);
    if (!(await this.#find(key))) return false;
    const now = new Date();
    if (this.config.statUsage) {
      // Python's StatUsage: an empty, world-writable marker whose mtime is the last use.
      const mark = this.#usageMark(key);
      await utimes(mark, now, now).catch(async () => {
        await mkdir(dirname(mark), { recursive: true, mode: 0o777 });
        await writeFile(mark, '', { mode: 0o777 });
      });
      return true;
    }
    // Without a tracker the blob's own mtime records the use; a blob owned by someone else keeps its time.
    await utimes(path, now, now).catch(() => undefined);
    return true;
  }

  /** A lease (lock file under tools/locks/), e.g. for single-flight memoisation across processes. */
  async lease(name: string, ttlMs: number, options?: OpOptions): Promise<Lease | null> {
    throwIfAborted(options?.signal);
    assertHexKey(name);
    return diskLease(join(this.#tools, 'locks'), name, ttlMs);
  }

  /** Moves a corrupt blob to tools/quarantine/ (Python tarn lists nothing under tools/). */
  async quarantine(key: string): Promise<string | undefined> {
    const path = this.pathOf(key);
    const size = (await this.#find(key))?.size;
    const dir = join(this.#tools, 'quarantine');
    await this.#tree.ensure(dir);
    const to = join(dir, `${key}.${new Date().toISOString().replace(/[:.]/g, '-')}`);
    try {
      await rename(path, to);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
    if (size !== undefined) await this.#ledger?.release(size);
    return to;
  }

  /**
   * Housekeeping: removes temp files no live writer will finish, and recounts a capped lake's
   * byte total (dropping the slack that killed writers leave).
   */
  async sweep(): Promise<{ tempFilesRemoved: number; usage?: Usage }> {
    const tempFilesRemoved = await sweepTemp(this.#tmp, this.#staleAfter);
    const usage = await this.#ledger?.rebuild();
    return { tempFilesRemoved, usage };
  }

  async close(): Promise<void> {}

  async #find(key: string): Promise<{ path: string; size: number } | undefined> {
    const path = this.pathOf(key);
    try {
      const st = await stat(path);
      if (st.isFile()) return { path, size: st.size };
      if (st.isDirectory()) {
        const data = join(path, 'data');
        const dt = await stat(data);
        return { path: data, size: dt.size };
      }
      return undefined;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
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

  async #count(): Promise<Usage> {
    let bytes = 0;
    let blobs = 0;
    for await (const key of this.keys()) {
      const found = await this.#find(key);
      if (found) {
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
