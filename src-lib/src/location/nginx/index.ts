import type { Readable } from 'node:stream';
import type { Agent, Dispatcher } from 'undici';
import { assertHexKey } from '../../digest.js';
import { ConfigError, raceAbort, throwIfAborted } from '../../errors.js';
import { Lazy } from '../../util/lazy.js';
import { lazyStream } from '../../util/lazy-stream.js';
import { sleep } from '../../util/process.js';
import { hasUserInfo } from '../../util/url.js';
import type { Location, OpOptions, Stage, StageOptions, Value } from '../contract.js';
import { CONFIG_NAME, type LakeConfig, parseLakeConfig } from '../disk/config.js';
import { keyToParts, type LakeEntry, walkLake } from '../disk/layout.js';
import { RemoteError, remoteError } from '../remote-error.js';

/** undici's timeout errors: not retried. */
const TIMEOUTS = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);

export interface NginxLocationOptions {
  /** Base URL of a lake folder served by nginx with `autoindex on` (JSON or HTML listings). */
  url: string;
  /** Extra request headers, e.g. `authorization` (from a secret, never inline in a config file). */
  headers?: Record<string, string>;
  connectTimeoutMs?: number;
  requestTimeoutMs?: number;
  /** Retries after a 5xx answer or a dropped connection, with exponential backoff (default 3). */
  retries?: number;
}

/**
 * A lake served over HTTP by nginx: read-only (writes are refused, so a Levels tree can keep it as a
 * slow bottom level). The layout comes from the lake's own config.yml; listing walks the autoindex pages.
 */
export class NginxLocation implements Location {
  readonly kind = 'nginx';
  readonly target: string;
  readonly #base: URL;
  readonly #options: NginxLocationOptions;
  readonly #agent = new Lazy<Agent>();
  readonly #config = new Lazy<LakeConfig>();

  constructor(urlOrOptions: string | NginxLocationOptions) {
    this.#options = typeof urlOrOptions === 'string' ? { url: urlOrOptions } : urlOrOptions;
    // The URL is the target, printed in every message: a password in it would be printed too.
    if (hasUserInfo(this.#options.url))
      throw new ConfigError(
        'credentials in the URL (user:password@) would show in messages and in tarn describe; pass them in headers (e.g. authorization), read from a secret (a literal @ in the path is %40)',
        ['url'],
      );
    this.#base = new URL(this.#options.url.endsWith('/') ? this.#options.url : `${this.#options.url}/`);
    this.target = this.#base.href;
  }

  async #dispatcher(): Promise<Agent> {
    return this.#agent.get(() =>
      import('undici').then(
        ({ Agent: A }) =>
          new A({
            connect: { timeout: this.#options.connectTimeoutMs ?? 5000 },
            headersTimeout: this.#options.requestTimeoutMs ?? 30_000,
            bodyTimeout: this.#options.requestTimeoutMs ?? 30_000,
            keepAliveTimeout: 10_000,
          }),
      ),
    );
  }

  /**
   * A request with retries on 5xx and dropped connections; 404 and other 4xx are answers, not
   * failures; a timeout fails at once (it already waited its bound).
   */
  async #request(
    method: 'GET' | 'HEAD',
    path: string,
    options?: OpOptions,
  ): Promise<Dispatcher.ResponseData> {
    const { request } = await import('undici');
    const url = new URL(path, this.#base);
    const retries = this.#options.retries ?? 3;
    let last: unknown;
    for (let attempt = 0; attempt <= retries; attempt++) {
      throwIfAborted(options?.signal);
      if (attempt > 0) await raceAbort(sleep(100 * 2 ** (attempt - 1)), options?.signal);
      try {
        const res = await request(url, {
          method,
          dispatcher: await this.#dispatcher(),
          // The raw bytes, never a gzip-encoded body: the key is the digest of the stored bytes.
          headers: { 'accept-encoding': 'identity', ...this.#options.headers },
          signal: options?.signal,
        });
        if (res.statusCode >= 500) {
          await res.body.dump();
          last = new Error(`HTTP ${res.statusCode} for ${url.href}`);
          continue;
        }
        return res;
      } catch (e) {
        // A timeout already waited its full bound: trying again would multiply it, not help.
        if (options?.signal?.aborted || TIMEOUTS.has((e as { code?: string }).code ?? ''))
          throw remoteError(`nginx ${this.target}`, `${method} ${url.pathname}`, e, options?.signal);
        last = e;
      }
    }
    throw new RemoteError(
      `nginx ${this.target}`,
      `${method} ${url.pathname} (after ${retries} retries)`,
      last,
    );
  }

  /** The lake's layout, from its config.yml (fetched once; a failure is retried on the next call). */
  async #lake(options?: OpOptions): Promise<LakeConfig> {
    return this.#config.get(async () => {
      const res = await this.#request('GET', CONFIG_NAME, options);
      const text = await res.body.text();
      if (res.statusCode !== 200) {
        throw new RemoteError(
          `nginx ${this.target}`,
          `GET ${CONFIG_NAME}`,
          new Error(`HTTP ${res.statusCode}: is this a tarn lake?`),
        );
      }
      return parseLakeConfig(text, new URL(CONFIG_NAME, this.#base).href);
    });
  }

  async #path(key: string, options?: OpOptions): Promise<string> {
    keyToParts(key, [1, -1]); // validate the key before any request
    return keyToParts(key, (await this.#lake(options)).levels).join('/');
  }

  async read(key: string, options?: OpOptions): Promise<Value | null> {
    const path = await this.#path(key, options);
    const res = await this.#get(path, options);
    if (!res) return null;
    let body: Readable | undefined = res.body;
    const size = Number(res.headers['content-length']);
    return {
      size: Number.isFinite(size) ? size : undefined,
      stream: (o?: OpOptions) => {
        if (body) {
          const b = body;
          body = undefined;
          return b;
        }
        // Opened again: the file must still be there, or the error page would pass for the value.
        return lazyStream(async () => {
          const again = await this.#get(path, o);
          if (!again)
            throw new RemoteError(`nginx ${this.target}`, `GET ${path}`, new Error('the file vanished'));
          return again.body;
        });
      },
      close: async () => {
        body?.destroy();
        body = undefined;
      },
    };
  }

  /** A GET of a stored file: its response, or null for 404; any other status is a RemoteError. */
  async #get(path: string, options?: OpOptions): Promise<Dispatcher.ResponseData | null> {
    const res = await this.#request('GET', path, options);
    if (res.statusCode === 200) return res;
    await res.body.dump();
    if (res.statusCode === 404) return null;
    throw new RemoteError(`nginx ${this.target}`, `GET ${path}`, new Error(`HTTP ${res.statusCode}`));
  }

  async contains(key: string, options?: OpOptions): Promise<boolean> {
    const res = await this.#request('HEAD', await this.#path(key, options), options);
    await res.body.dump();
    return res.statusCode === 200;
  }

  /** Read-only: every write is refused, so a combinator moves on and the caller keeps its bytes. */
  /** Read-only: every write is refused up front (a malformed key is still an InvalidKeyError). */
  async stage(options?: StageOptions): Promise<Stage | null> {
    if (options?.key !== undefined) assertHexKey(options.key);
    return null;
  }

  async delete(key: string, options?: OpOptions): Promise<boolean> {
    await this.#path(key, options);
    return false;
  }

  async touch(key: string, options?: OpOptions): Promise<boolean> {
    return this.contains(key, options);
  }

  async *keys(options?: OpOptions): AsyncIterable<string> {
    const { levels } = await this.#lake(options);
    yield* walkLake(levels, (folder) => this.#list(folder ? `${folder}/` : '', options), options?.signal);
  }

  /** One autoindex page, JSON (`autoindex_format json`) or nginx's HTML. */
  async #list(dir: string, options?: OpOptions): Promise<LakeEntry[]> {
    const res = await this.#request('GET', dir, options);
    const text = await res.body.text();
    if (res.statusCode === 404) return [];
    if (res.statusCode !== 200)
      throw new RemoteError(`nginx ${this.target}`, `GET ${dir}`, new Error(`HTTP ${res.statusCode}`));
    if (String(res.headers['content-type'] ?? '').includes('json')) {
      return (JSON.parse(text) as Array<{ name: string; type: string }>).map((e) => ({
        name: e.name,
        dir: e.type === 'directory',
        blob: true,
      }));
    }
    const out: LakeEntry[] = [];
    for (const m of text.matchAll(/<a href="([^"?#]+)">/g)) {
      const href = decodeURIComponent(m[1] as string);
      if (href === '../' || (href.includes('/') && !href.endsWith('/'))) continue;
      out.push({ name: href.replace(/\/$/, ''), dir: href.endsWith('/'), blob: true });
    }
    return out;
  }

  async close(): Promise<void> {
    const agent = this.#agent.take();
    if (agent) await (await agent).close();
  }
}
