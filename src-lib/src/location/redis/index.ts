import { randomBytes } from 'node:crypto';
import type { RedisOptions as ClientOptions, Redis as RedisClient } from 'ioredis';
import { assertHexKey } from '../../digest.js';
import { throwIfAborted } from '../../errors.js';
import { Lazy } from '../../util/lazy.js';
import { redactUrl } from '../../util/url.js';
import type { CommitResult, Lease, Location, OpOptions, Stage, StageOptions, Value } from '../contract.js';
import { remoteError } from '../remote-error.js';
import { MemoryStage, memoryValue, SpoolStage } from '../spool.js';

export interface RedisLocationOptions {
  /**
   * `redis://[[user]:password@]host:port/db` or `rediss://…` (TLS). Default `redis://127.0.0.1:6379`.
   * A password here is used but never printed (`target` shows `redis://***@host`); a config file
   * refuses it (its `password` field takes a secret).
   */
  url?: string;
  /** Extra ioredis options (password from a secret, TLS, sentinels, …). */
  client?: ClientOptions;
  /** Prefix of our keys, so that one Redis can hold several stores and listing sees only ours. */
  prefix?: string;
  /** Expire values this many seconds after their last read or write. */
  ttl?: number;
  /** Refuse values larger than this (default 64 MiB): Redis is a cache for small values. */
  maxValueSize?: number;
  /** Connection and per-command timeouts (default 5 s each). */
  connectTimeoutMs?: number;
  commandTimeoutMs?: number;
}

/**
 * Values in Redis, one string per key, named as Python tarn names them: the prefix followed by the
 * raw digest bytes. Writes are SET NX (a key is never overwritten); reads refresh the TTL.
 */
export class RedisLocation implements Location {
  readonly kind = 'redis';
  readonly target: string;
  readonly #url: string;
  readonly #options: RedisLocationOptions;
  readonly #prefix: Buffer;
  readonly #max: number;
  readonly #client = new Lazy<RedisClient>();

  constructor(urlOrOptions: string | RedisLocationOptions = {}) {
    const options = typeof urlOrOptions === 'string' ? { url: urlOrOptions } : urlOrOptions;
    this.#options = options;
    this.#url = redisUrl(options.url ?? 'redis://127.0.0.1:6379');
    // ioredis users put the password in the URL; it is accepted from code, never printed.
    this.target = redactUrl(this.#url);
    this.#prefix = Buffer.from(options.prefix ?? '');
    this.#max = options.maxValueSize ?? 64 << 20;
  }

  async #redis(): Promise<RedisClient> {
    return this.#client.get(async () => {
      const { Redis } = await import('ioredis');
      const client = new Redis(this.#url, {
        lazyConnect: true,
        connectTimeout: this.#options.connectTimeoutMs ?? 5000,
        commandTimeout: this.#options.commandTimeoutMs ?? 5000,
        // Fail fast while the server is down instead of queueing commands forever.
        enableOfflineQueue: false,
        maxRetriesPerRequest: 1,
        retryStrategy: (times) => Math.min(times * 200, 2000),
        ...this.#options.client,
      });
      // Reported by the failing command instead; the last one explains a failed connect.
      let last: Error | undefined;
      client.on('error', (e: Error) => {
        last = e;
      });
      try {
        await client.connect();
      } catch (e) {
        // Otherwise the client keeps reconnecting in the background, and keeps the process alive.
        client.disconnect();
        throw last ?? e;
      }
      return client;
    });
  }

  #key(key: string): Buffer {
    assertHexKey(key);
    const digest = Buffer.from(key, 'hex');
    return this.#prefix.length === 0 ? digest : Buffer.concat([this.#prefix, digest]);
  }

  async #run<T>(
    action: string,
    options: OpOptions | undefined,
    fn: (r: RedisClient) => Promise<T>,
  ): Promise<T> {
    throwIfAborted(options?.signal);
    try {
      return await fn(await this.#redis());
    } catch (e) {
      throw remoteError(`redis ${this.target}`, action, e, options?.signal);
    }
  }

  async read(key: string, options?: OpOptions): Promise<Value | null> {
    const k = this.#key(key);
    const ttl = this.#options.ttl;
    // With a TTL, a read renews it in the same round trip (GETEX, Redis 6.2+).
    const data = ttl
      ? await this.#run('GETEX', options, (r) => r.getexBuffer(k, 'EX', ttl))
      : await this.#run('GET', options, (r) => r.getBuffer(k));
    return data ? memoryValue(data) : null;
  }

  async stage(options: StageOptions = {}): Promise<Stage | null> {
    // A key known up front is checked now, and its Redis name made once for the commit.
    const known = options.key === undefined ? undefined : this.#key(options.key);
    if ((options.size ?? 0) > this.#max) return null;
    const set = (key: string, data: Buffer) =>
      this.#set(key === options.key && known ? known : this.#key(key), data, options);
    // A known size under the limit (a Buffer written, a copy-on-read): the chunks stay as pushed and
    // go out in the one SET NX, nothing in between. Otherwise a spool, which refuses at the limit.
    if (options.size !== undefined) return new MemoryStage(set, this.#max);
    return new SpoolStage(
      // memoryLimit = maxValueSize: a value that fits is always in memory.
      (key, spool) => set(key, spool.memory ?? Buffer.alloc(0)),
      { maxSize: this.#max, memoryLimit: this.#max },
    );
  }

  /** SET NX: Redis itself decides, atomically, which of racing writers stores the value. */
  async #set(k: Buffer, data: Buffer, options: OpOptions): Promise<CommitResult> {
    const ttl = this.#options.ttl;
    const set = await this.#run('SET', options, (r) =>
      ttl ? r.set(k, data, 'EX', ttl, 'NX') : r.set(k, data, 'NX'),
    );
    return { status: set === 'OK' ? 'stored' : 'existed' };
  }

  async contains(key: string, options?: OpOptions): Promise<boolean> {
    const k = this.#key(key);
    return (await this.#run('EXISTS', options, (r) => r.exists(k))) > 0;
  }

  async delete(key: string, options?: OpOptions): Promise<boolean> {
    const k = this.#key(key);
    return (await this.#run('DEL', options, (r) => r.del(k))) > 0;
  }

  async *keys(options?: OpOptions): AsyncIterable<string> {
    const r = await this.#run('SCAN', options, async (c) => c);
    // Glob-escape the prefix so that a prefix with * or ? lists only our keys.
    const pattern = Buffer.concat([
      Buffer.from(this.#prefix.toString('latin1').replace(/[*?[\]\\]/g, '\\$&'), 'latin1'),
      Buffer.from('*'),
    ]);
    const stream = r.scanBufferStream({ match: pattern.toString('latin1'), count: 1000 });
    try {
      for await (const batch of stream as AsyncIterable<Buffer[]>) {
        throwIfAborted(options?.signal);
        for (const k of batch) {
          const digest = k.subarray(this.#prefix.length);
          // Python tarn's labels/usage keys share the keyspace; digests have these lengths only.
          if (k.subarray(0, this.#prefix.length).equals(this.#prefix) && DIGEST_BYTES.has(digest.length)) {
            yield digest.toString('hex');
          }
        }
      }
    } catch (e) {
      throw remoteError(`redis ${this.target}`, 'SCAN', e, options?.signal);
    }
  }

  async touch(key: string, options?: OpOptions): Promise<boolean> {
    const k = this.#key(key);
    const ttl = this.#options.ttl;
    if (ttl) return (await this.#run('EXPIRE', options, (r) => r.expire(k, ttl))) === 1;
    return this.contains(key, options);
  }

  /**
   * A lease as a key with an expiry (`SET NX PX`), shared by every client of this server: the
   * cluster-wide lock of single-flight memoisation. Renew and release act only while the key still
   * holds our token, so an expired lease taken over by another holder is left alone.
   */
  async lease(name: string, ttlMs: number, options?: OpOptions): Promise<Lease | null> {
    assertHexKey(name);
    const k = Buffer.concat([this.#prefix, Buffer.from(`lease:${name}`)]);
    const token = randomBytes(12).toString('hex');
    const ok = await this.#run('SET NX', options, (r) => r.set(k, token, 'PX', ttlMs, 'NX'));
    if (ok !== 'OK') return null;
    return {
      renew: async () =>
        (await this.#run('PEXPIRE', undefined, (r) => r.eval(RENEW, 1, k, token, String(ttlMs)))) === 1,
      release: async () => {
        await this.#run('DEL', undefined, (r) => r.eval(RELEASE, 1, k, token)).catch(() => undefined);
      },
    };
  }

  async close(): Promise<void> {
    const client = this.#client.take();
    if (client) (await client.catch(() => undefined))?.disconnect();
  }
}

const RENEW =
  "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end";
const RELEASE =
  "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end";

const DIGEST_BYTES = new Set([16, 20, 28, 32, 48, 64]);

/** A bare `host` or `host:port` (as the original tarn takes it) becomes a redis:// URL. */
function redisUrl(url: string): string {
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(url) || url.startsWith('/') ? url : `redis://${url}`;
}
