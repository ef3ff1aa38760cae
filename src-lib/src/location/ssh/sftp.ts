import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
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
  readonly #pool: ConnectionPool<SftpClient>;
  readonly #lake = new Lazy<LakeConfig>();

  constructor(host: string, root: string, options: SshOptions = {}) {
    this.#host = host;
    this.#root = posix.resolve('/', root);
    this.#options = options;
    this.#pool = new ConnectionPool(
      options.connections ?? 2,
      (drop) => this.#connect(drop),
      (c) => c.end(),
    );
    this.target = sshTarget(host, this.#root, options);
  }

  async #connect(drop: () => void): Promise<SftpClient> {
    const { default: Client } = await import('ssh2-sftp-client');
    // Quiet callbacks: the library's defaults print connection events to stdout.
    const quiet = () => undefined;
    const client = new Client('tarn', { error: quiet, end: quiet, close: quiet });
    const check = hostKeyCheck(this.#host, this.#options.port ?? 22, this.#options);
    try {
      await client.connect(connectConfig(this.#host, this.#options, check.verify));
    } catch (e) {
      throw check.reason() ? new Error(check.reason(), { cause: e }) : e;
    }
    client.on('error', drop);
    client.on('end', drop);
    return client;
  }

  async #run<T>(
    action: string,
    options: OpOptions | undefined,
    fn: (c: SftpClient) => Promise<T>,
  ): Promise<T> {
    const signal = options?.signal;
    throwIfAborted(signal);
    let onAbort: (() => void) | undefined;
    try {
      const { client, drop } = await this.#pool.get();
      if (signal) {
        // SFTP transfers have no cancel: an abort drops the connection under them (the pool reconnects).
        onAbort = () => {
          drop();
          // end() would wait for the transfer; destroying the SSH connection fails it at once.
          (client as unknown as { client?: { destroy(): void } }).client?.destroy();
        };
        signal.addEventListener('abort', onAbort, { once: true });
      }
      return await fn(client);
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
          await c.mkdir(`${this.#root}/.tmp`, true);
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
    return this.#run('write', options, async (c) => {
      if (await c.exists(final)) return { status: 'existed' };
      await this.#ensureDir(c, posix.dirname(final));
      const tmp = `${this.#root}/.tmp/${ownedName('stage')}`;
      if (spool.path) await c.fastPut(spool.path, tmp, { mode: 0o444 });
      else await c.put(spool.memory ?? spool.stream(), tmp, { writeStreamOptions: { mode: 0o444 } });
      try {
        // OpenSSH's rename links and unlinks: it fails rather than replace an existing blob.
        await c.rename(tmp, final);
        return { status: 'stored' };
      } catch (e) {
        await c.delete(tmp, true);
        if (await c.exists(final)) return { status: 'existed' };
        throw e;
      }
    });
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
