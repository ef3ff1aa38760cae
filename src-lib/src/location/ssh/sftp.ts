import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import type { SFTPWrapper } from 'ssh2';
import type SftpClient from 'ssh2-sftp-client';
import { throwIfAborted } from '../../errors.js';
import { Lazy } from '../../util/lazy.js';
import { ownedName } from '../../util/process.js';
import { FileValue } from '../../value.js';
import type { CommitResult, Location, OpOptions, Stage, StageOptions, Value } from '../contract.js';
import { CONFIG_NAME, type LakeConfig, parseLakeConfig } from '../disk/config.js';
import { keyToParts, walkLake } from '../disk/layout.js';
import { remoteError } from '../remote-error.js';
import { type Spool, SpoolStage } from '../spool.js';
import { connectConfig, DEFAULT_LAKE_CONFIG, hostKeyCheck, type SshOptions, sshTarget } from './options.js';
import { ConnectionPool } from './pool.js';

/** A pooled connection: the client, and its raw SFTP session for the pipelined small writes. */
interface Connection {
  client: SftpClient;
  sftp: SFTPWrapper;
}

/**
 * Values up to this size do not wait for the answer to whether the key exists: the question goes
 * out with the OPEN of the temp file (see #writeSmall), so a new value costs what a plain upload
 * costs, and an existing one an empty temp file opened and removed (none of its bytes are sent).
 * Larger values are asked about before anything else, as a plain round trip.
 */
const SFTP_DIRECT_WRITE = 256 << 10;

/** SFTP's SSH_FX_NO_SUCH_FILE. */
const NO_SUCH_FILE = 2;

/**
 * A lake on an SSH host, over SFTP: the same layout as a local lake (so Python tarn and `tarn` on
 * that host read it too), writes to a temp name and then a rename that never replaces a blob, and a
 * small pool of connections shared by every operation.
 */
export class SFTPLocation implements Location {
  readonly kind = 'sftp';
  readonly target: string;
  readonly #host: string;
  readonly #root: string;
  readonly #options: SshOptions;
  readonly #pool: ConnectionPool<Connection>;
  readonly #lake = new Lazy<LakeConfig>();

  constructor(host: string, root: string, options: SshOptions = {}) {
    this.#host = host;
    this.#root = posix.resolve('/', root);
    this.#options = options;
    this.#pool = new ConnectionPool(
      options.connections ?? 2,
      (drop) => this.#connect(drop),
      (c) => c.client.end(),
    );
    this.target = sshTarget(host, this.#root, options);
  }

  async #connect(drop: () => void): Promise<Connection> {
    const { default: Client } = await import('ssh2-sftp-client');
    // Quiet callbacks: the library's defaults print connection events to stdout.
    const quiet = () => undefined;
    const client = new Client('tarn', { error: quiet, end: quiet, close: quiet });
    const check = hostKeyCheck(this.#host, this.#options.port ?? 22, this.#options);
    let sftp: SFTPWrapper;
    try {
      sftp = await client.connect(connectConfig(this.#host, this.#options, check.verify));
    } catch (e) {
      throw check.reason() ? new Error(check.reason(), { cause: e }) : e;
    }
    client.on('error', drop);
    client.on('end', drop);
    return { client, sftp };
  }

  async #run<T>(
    action: string,
    options: OpOptions | undefined,
    fn: (c: SftpClient, sftp: SFTPWrapper) => Promise<T>,
  ): Promise<T> {
    const signal = options?.signal;
    throwIfAborted(signal);
    let onAbort: (() => void) | undefined;
    try {
      const {
        client: { client, sftp },
        drop,
      } = await this.#pool.get();
      if (signal) {
        // SFTP transfers have no cancel: an abort drops the connection under them (the pool reconnects).
        onAbort = () => {
          drop();
          // end() would wait for the transfer; destroying the SSH connection fails it at once.
          (client as unknown as { client?: { destroy(): void } }).client?.destroy();
        };
        signal.addEventListener('abort', onAbort, { once: true });
      }
      return await fn(client, sftp);
    } catch (e) {
      // A connection that broke removed itself from the pool (its 'end' and 'error' events).
      throw remoteError(`sftp ${this.target}`, action, e, signal);
    } finally {
      if (onAbort) signal?.removeEventListener('abort', onAbort);
    }
  }

  /** The lake's config.yml, created (as Python tarn would) when the folder has none. */
  async #config(options?: OpOptions): Promise<LakeConfig> {
    return this.#lake.get(() =>
      this.#run('read config.yml', options, async (c) => {
        const file = `${this.#root}/${CONFIG_NAME}`;
        let text: string;
        if (await c.exists(file)) {
          text = ((await c.get(file)) as Buffer).toString('utf8');
        } else {
          await mkdirs(c, `${this.#root}/.tmp`);
          const tmp = `${this.#root}/.tmp/${ownedName('config')}`;
          await c.put(Buffer.from(DEFAULT_LAKE_CONFIG), tmp);
          await c.rename(tmp, file).catch(() => c.delete(tmp, true)); // another writer created it first
          text = ((await c.get(file)) as Buffer).toString('utf8');
        }
        return parseLakeConfig(text, `${this.target}/${CONFIG_NAME}`);
      }),
    );
  }

  async #path(key: string, options?: OpOptions): Promise<string> {
    keyToParts(key, [1, -1]); // validate before any request
    return `${this.#root}/${keyToParts(key, (await this.#config(options)).levels).join('/')}`;
  }

  /**
   * Downloads the value to a private local temp file (removed on close), as Python tarn does:
   * fastGet keeps many requests in flight, where a streamed read waits for each 32 KiB.
   */
  async read(key: string, options?: OpOptions): Promise<Value | null> {
    const path = await this.#path(key, options);
    const local = join(tmpdir(), ownedName('tarn-sftp'));
    const found = await this.#run('read', options, async (c) => {
      const kind = await c.exists(path);
      if (kind === false) return false;
      await c.fastGet(kind === 'd' ? `${path}/data` : path, local); // 'd': Python tarn's legacy <key>/data
      return true;
    });
    if (!found) return null;
    return FileValue.open(local, () => rm(local, { force: true }));
  }

  async stage(options: StageOptions = {}): Promise<Stage | null> {
    if (options.key !== undefined) await this.#path(options.key, options);
    return new SpoolStage((key, spool) => this.#publish(key, spool, options));
  }

  async #publish(key: string, spool: Spool, options: OpOptions): Promise<CommitResult> {
    const final = await this.#path(key, options);
    return this.#run('write', options, async (c, sftp) => {
      const tmp = `${this.#root}/.tmp/${ownedName('stage')}`;
      if (spool.memory !== undefined && spool.size <= SFTP_DIRECT_WRITE)
        return this.#writeSmall(c, sftp, tmp, final, spool.memory);
      if (await c.exists(final)) return { status: 'existed' };
      if (spool.path) await c.fastPut(spool.path, tmp, { mode: 0o444 });
      else await c.put(spool.memory ?? spool.stream(), tmp, { writeStreamOptions: { mode: 0o444 } });
      return this.#link(c, sftp, tmp, final);
    });
  }

  /**
   * A small value in three round trips, as a plain upload takes: the question whether the key
   * exists travels with the OPEN of the temp file; then every WRITE and the CLOSE go at once (the
   * server answers them in order); then the rename that publishes it, sent only after every answer
   * said OK, so a failed write is never published. An existing key costs two: the question, then the
   * temp file closed and removed.
   */
  async #writeSmall(
    c: SftpClient,
    sftp: SFTPWrapper,
    tmp: string,
    final: string,
    data: Buffer,
  ): Promise<CommitResult> {
    const [exists, opened] = await Promise.allSettled([lstatExists(sftp, final), openNew(sftp, tmp)]);
    let handle = opened.status === 'fulfilled' ? opened.value : undefined;
    if (exists.status === 'rejected' || (exists.status === 'fulfilled' && exists.value)) {
      if (handle) await closeAndRemove(sftp, handle, tmp);
      if (exists.status === 'rejected') throw exists.reason;
      return { status: 'existed' };
    }
    if (!handle) {
      const e = (opened as PromiseRejectedResult).reason as { code?: unknown };
      // A lake without its .tmp folder (made by hand, or by an older writer): made, then once more.
      if (e?.code !== NO_SUCH_FILE) throw e;
      await mkdirs(c, `${this.#root}/.tmp`);
      handle = await openNew(sftp, tmp);
    }
    try {
      await writeAndClose(sftp, handle, data);
    } catch (e) {
      await closeAndRemove(sftp, undefined, tmp);
      throw e;
    }
    return this.#link(c, sftp, tmp, final);
  }

  /**
   * Publishes the temp file under its key. OpenSSH's rename links and unlinks: it fails rather than
   * replace an existing blob, so exactly one of racing writers stores. The blob's folder is made
   * only when the rename says it is missing (a lake's 256 folders exist after its first values).
   */
  async #link(c: SftpClient, sftp: SFTPWrapper, tmp: string, final: string): Promise<CommitResult> {
    let failure = await rename(sftp, tmp, final);
    if (failure === undefined) return { status: 'stored' };
    if (failure.code === NO_SUCH_FILE) {
      // The folder was missing (another writer may have just made it): made, and once more.
      await this.#ensureDir(c, posix.dirname(final));
      failure = await rename(sftp, tmp, final);
      if (failure === undefined) return { status: 'stored' };
    }
    await c.delete(tmp, true);
    if (await c.exists(final)) return { status: 'existed' };
    throw failure;
  }

  /** mkdir -p that tolerates other writers creating the same folders at the same moment. */
  async #ensureDir(c: SftpClient, dir: string): Promise<void> {
    const parts = posix.relative(this.#root, dir).split('/').filter(Boolean);
    let at = this.#root;
    for (const part of parts) {
      at = `${at}/${part}`;
      if ((await c.exists(at)) === 'd') continue;
      try {
        await c.mkdir(at);
      } catch (e) {
        if ((await c.exists(at)) !== 'd') throw e;
      }
    }
  }

  async contains(key: string, options?: OpOptions): Promise<boolean> {
    const path = await this.#path(key, options);
    return this.#run('stat', options, async (c) => (await c.exists(path)) !== false);
  }

  async delete(key: string, options?: OpOptions): Promise<boolean> {
    const path = await this.#path(key, options);
    return this.#run('delete', options, async (c) => {
      const kind = await c.exists(path);
      if (kind === false) return false;
      if (kind === 'd') await c.rmdir(path, true);
      else await c.delete(path, true);
      return true;
    });
  }

  async touch(key: string, options?: OpOptions): Promise<boolean> {
    return this.contains(key, options);
  }

  async *keys(options?: OpOptions): AsyncIterable<string> {
    const { levels } = await this.#config(options);
    const list = async (folder: string) =>
      (await this.#run('list', options, (c) => c.list(folder ? `${this.#root}/${folder}` : this.#root))).map(
        (e) => ({
          name: e.name,
          dir: e.type === 'd',
          blob: true,
        }),
      );
    yield* walkLake(levels, list, options?.signal);
  }

  async close(): Promise<void> {
    await this.#pool.close();
  }
}

/**
 * mkdir -p of a folder that other writers may be making at the same moment (writers of a new lake
 * all make its .tmp): their success is ours.
 */
async function mkdirs(c: SftpClient, dir: string): Promise<void> {
  // Writers creating one fresh lake race on its folders: a recursive mkdir that lost the race for
  // a parent fails before it made the rest, so it is tried again while the parents now exist.
  for (let attempt = 1; ; attempt++) {
    try {
      await c.mkdir(dir, true);
      return;
    } catch (e) {
      if ((await c.exists(dir)) === 'd') return;
      if (attempt >= 3) throw e;
    }
  }
}

/** SFTP rename: undefined when done, else the server's error (with its status `code`). */
function rename(
  sftp: SFTPWrapper,
  from: string,
  to: string,
): Promise<(Error & { code?: unknown }) | undefined> {
  return new Promise((resolve) => sftp.rename(from, to, (e) => resolve(e ?? undefined)));
}

/** Whether something is at `path` (lstat: a link is not followed). */
function lstatExists(sftp: SFTPWrapper, path: string): Promise<boolean> {
  return new Promise((resolve, reject) =>
    sftp.lstat(path, (e) => {
      if (!e) resolve(true);
      else if ((e as { code?: unknown }).code === NO_SUCH_FILE) resolve(false);
      else reject(e);
    }),
  );
}

/** Creates `path`, exclusively and read-only (the blob's mode), for writing. */
function openNew(sftp: SFTPWrapper, path: string): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    sftp.open(path, 'wx', { mode: 0o444 }, (e, handle) => (e ? reject(e) : resolve(handle))),
  );
}

/** Writes `data` at the start of the open file, then closes it: every request sent at once. */
function writeAndClose(sftp: SFTPWrapper, handle: Buffer, data: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    // ssh2 cuts a larger write into requests that wait for each other; 32 KiB ones all go at once.
    const PIECE = 32 << 10;
    let pending = 1 + Math.ceil(data.byteLength / PIECE);
    let failed: Error | undefined;
    const answered = (e?: Error | null) => {
      if (e) failed ??= e;
      if (--pending > 0) return;
      if (failed) reject(failed);
      else resolve();
    };
    for (let at = 0; at < data.byteLength; at += PIECE)
      sftp.write(handle, data, at, Math.min(PIECE, data.byteLength - at), at, answered);
    sftp.close(handle, answered);
  });
}

/** Drops a temp file: its handle closed (when open) and the file removed, both sent at once. */
function closeAndRemove(sftp: SFTPWrapper, handle: Buffer | undefined, path: string): Promise<void> {
  return new Promise((resolve) => {
    if (handle) sftp.close(handle, () => undefined);
    // Best effort: a temp file left behind is swept later, like a local lake's.
    sftp.unlink(path, () => resolve());
  });
}
