import { lstat, stat } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import type { Dispatcher } from 'undici';
import { assertHexKey } from '../../digest.js';
import { InvalidKeyError } from '../../errors.js';
import { lazyStream } from '../../util/lazy-stream.js';
import { FileValue } from '../../value.js';
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
import { RemoteError, remoteError } from '../remote-error.js';
import type { SpillOptions } from '../spill.js';
import {
  HEADERS,
  keyLine,
  LEASE_TTL_MAX_MS,
  LEASE_TTL_MIN_MS,
  leaseNameParam,
  leaseResult,
  type PathResultBody,
  pathResult,
  putResult,
} from './api.js';
import { SidecarTransport, type SidecarTransportOptions } from './http.js';
import { SidecarMemoIndex } from './memo.js';
import { UploadStage } from './upload.js';

export interface SidecarLocationOptions extends SidecarTransportOptions {
  /**
   * Ask the sidecar for a file path first (`GET /v1/blobs/{key}/path`) and hand out that file when
   * this process sees it (a volume shared with the sidecar): zero copies. Default true. Turned off
   * by itself, for the rest of this location's life, as soon as an answered file is not visible here.
   */
  paths?: boolean;
  /**
   * What an upload keeps of its bytes so that a refusal can hand them back (Stage.reclaim): memory
   * up to `memoryLimit` (8 MiB), then a temp file in `tmpDir`. `false` keeps nothing: a refused
   * upload then fails with a WriteError instead, and a Levels cannot move it on to another level.
   */
  replay?: SpillOptions | false;
  /**
   * `write(path)` of a file of at least this many bytes first asks the sidecar to read the file
   * itself (`POST /v1/blobs/ingest`: a folder it shares with this process, in its
   * `serve.ingestRoots`), so the bytes never cross the socket; a refusal streams it as usual.
   * Default 1 MiB (below that, a stream is one round trip too, and a refusal would cost a second);
   * `false`: never. Turned off by itself when the sidecar says it ingests nothing.
   */
  ingestFrom?: number | false;
}

/** A file that takes longer than the request timeout to store is still being stored at this rate. */
const INGEST_BYTES_PER_MS = 50_000;

/**
 * The storage a tarn sidecar serves on its Unix socket (`tarn serve`), as a Location: its whole
 * tree (levels, caches, remotes) behind one socket. HashKeyStorage, every combinator and smartCache
 * run over it unchanged. Reads give a local file when the sidecar's answer names one this process
 * can open (zero copy), else stream; writes stream (the sidecar hashes as the bytes come).
 *
 * A sidecar that is down, a timeout, a 5xx: RemoteError (a Levels passes over this level; smartCache
 * computes). An answer about the request (a bad key, a forbidden delete): the library's typed error.
 */
export class SidecarLocation implements Location {
  readonly kind = 'sidecar';
  /** The socket's path. */
  readonly target: string;
  readonly #transport: SidecarTransport;
  readonly #paths: boolean;
  readonly #replay: SpillOptions | false;
  readonly #timeoutMs: number;
  /** Whether answered paths are still worth asking for: false once one was not visible here. */
  #pathsVisible = true;
  /** Files of at least this size are offered for ingest; Infinity: never (off, or the sidecar said so). */
  #ingestFrom: number;
  #closed = false;

  constructor(socket: string, options: SidecarLocationOptions = {}) {
    this.target = resolve(socket);
    this.#transport = new SidecarTransport(this.target, options);
    this.#paths = options.paths ?? true;
    this.#replay = options.replay ?? {};
    this.#timeoutMs = options.requestTimeoutMs ?? 60_000;
    this.#ingestFrom =
      options.ingestFrom === false ? Number.POSITIVE_INFINITY : (options.ingestFrom ?? 1 << 20);
  }

  /** Whether reads still ask for file paths (`paths` on, and no answered file was invisible so far). */
  get zeroCopy(): boolean {
    return this.#paths && this.#pathsVisible;
  }

  async read(key: string, options?: ReadOpOptions): Promise<Value | null> {
    assertHexKey(key);
    if (this.zeroCopy) {
      const local = await this.#readPath(key, options);
      if (local !== 'stream') return local;
    }
    return this.#readStream(key, options);
  }

  /** The value as a file of the shared volume; null when not stored; 'stream' when no file can be had. */
  async #readPath(key: string, options?: OpOptions): Promise<Value | null | 'stream'> {
    const action = `GET /v1/blobs/${key}/path`;
    const res = await this.#transport.send('GET', `/v1/blobs/${key}/path`, { signal: options?.signal });
    if (res.statusCode === 200) {
      const answer = await this.#transport.json(res, pathResult, action, options?.signal);
      return (await this.#openLocal(answer)) ?? 'stream';
    }
    const error = await this.#transport.failure(res, action, { key });
    const code = (error as { code?: string }).code;
    if (code === 'TARN_NOT_FOUND') return null;
    // Stored, but no local lake takes a copy: the bytes come over the socket.
    if (code === 'TARN_NO_LOCAL_COPY') return 'stream';
    // A sidecar without the route (an older one): stop asking.
    if (code === 'TARN_NO_ROUTE') {
      this.#pathsVisible = false;
      return 'stream';
    }
    throw error;
  }

  /**
   * Opens the answered file, if this process sees it: the same file at the same path (a volume
   * mounted at the same place), of the answered size. The descriptor is opened first and checked
   * with fstat, so a delete that follows cannot pull the bytes away; a symbolic link as the last
   * component is not followed (O_NOFOLLOW). Not visible (another mount namespace, another volume
   * at that path): null, and paths are not asked for again.
   */
  async #openLocal(answer: PathResultBody): Promise<Value | null> {
    if (!isAbsolute(answer.path)) {
      this.#pathsVisible = false;
      return null;
    }
    let value: FileValue | null;
    try {
      value = await FileValue.open(answer.path);
    } catch {
      // EACCES and the like: there is a file, but not for us.
      this.#pathsVisible = false;
      return null;
    }
    if (!value) {
      // Its folder is here but the file is not: deleted since the answer (stream this once).
      // No folder either: the volume is not mounted here.
      const folder = await lstat(dirname(answer.path)).catch(() => undefined);
      if (!folder?.isDirectory()) this.#pathsVisible = false;
      return null;
    }
    if (value.size !== answer.size) {
      await value.close();
      this.#pathsVisible = false;
      return null;
    }
    return value;
  }

  async #readStream(key: string, options?: OpOptions): Promise<Value | null> {
    const res = await this.#get(key, options);
    if (!res) return null;
    const length = Number(res.headers['content-length']);
    let body: Dispatcher.ResponseData['body'] | undefined = res.body;
    const again = (o?: OpOptions) =>
      lazyStream(async () => {
        const next = await this.#get(key, o);
        if (!next)
          throw new RemoteError(
            this.#transport.where,
            `GET /v1/blobs/${key}`,
            new Error('the value vanished'),
          );
        return next.body;
      });
    return {
      size: Number.isFinite(length) ? length : undefined,
      stream: (o?: OpOptions) => {
        const first = body;
        body = undefined;
        const stream = first ?? again(o);
        const signal = o?.signal;
        if (first && signal) {
          const abort = () => stream.destroy(signal.reason);
          if (signal.aborted) abort();
          else signal.addEventListener('abort', abort, { once: true });
          stream.once('close', () => signal.removeEventListener('abort', abort));
        }
        return stream;
      },
      bytes: async (o?: OpOptions) => {
        const first = body;
        body = undefined;
        const stream = first ?? again(o);
        const parts: Buffer[] = [];
        try {
          for await (const chunk of stream) parts.push(chunk as Buffer);
        } catch (e) {
          throw remoteError(this.#transport.where, `GET /v1/blobs/${key}`, e, o?.signal);
        }
        return Buffer.concat(parts);
      },
      close: async () => {
        const unread = body;
        body = undefined;
        // A small rest is read so the connection can be reused; a large one closes it.
        await unread?.dump({ limit: 64 << 10 }).catch(() => undefined);
      },
    };
  }

  /** A GET of a stored value: the answer, or null when not stored. */
  async #get(key: string, options?: OpOptions): Promise<Dispatcher.ResponseData | null> {
    const res = await this.#transport.send('GET', `/v1/blobs/${key}`, { signal: options?.signal });
    if (res.statusCode === 200) return res;
    const error = await this.#transport.failure(res, `GET /v1/blobs/${key}`, { key });
    if ((error as { code?: string }).code === 'TARN_NOT_FOUND') return null;
    throw error;
  }

  /**
   * Asks the sidecar to store the file by reading it itself. Null, and the caller streams it: the
   * file is small, not a regular file here, or the sidecar refuses to read it (403: not in a shared
   * folder, not visible there, a link). Anything else the sidecar answers is thrown as typed.
   */
  async ingest(path: string, options: IngestOptions): Promise<IngestResult | null> {
    if (!Number.isFinite(this.#ingestFrom) || !isAbsolute(path)) return null;
    const st = await stat(path).catch(() => undefined);
    if (!st?.isFile() || st.size < this.#ingestFrom) return null;
    const action = 'POST /v1/blobs/ingest';
    const body = JSON.stringify({ path, algorithm: options.digest.name, expect: options.key });
    // The answer comes once the file is stored: give it time in proportion to its size.
    const timeout = AbortSignal.timeout(this.#timeoutMs + Math.ceil(st.size / INGEST_BYTES_PER_MS));
    const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
    let res: Dispatcher.ResponseData;
    try {
      res = await this.#transport.send('POST', '/v1/blobs/ingest', {
        body,
        headers: { 'content-type': 'application/json' },
        signal,
        noHeadersTimeout: true,
      });
    } catch (e) {
      if (timeout.aborted && !options.signal?.aborted)
        throw new RemoteError(this.#transport.where, action, new Error('no answer in time'));
      throw e;
    }
    if (res.statusCode === 201) return this.#transport.json(res, putResult, action, options.signal);
    if (res.statusCode === 403 || res.statusCode === 404) {
      // 404: a sidecar without the route (an older one), as `off`.
      if (res.statusCode === 404 || res.headers[HEADERS.ingest] === 'off')
        this.#ingestFrom = Number.POSITIVE_INFINITY;
      await res.body.dump().catch(() => undefined);
      return null;
    }
    throw await this.#transport.failure(res, action, { expected: options.key });
  }

  async stage(options: StageOptions = {}): Promise<Stage | null> {
    if (options.key !== undefined) assertHexKey(options.key);
    return new UploadStage(this.#transport, options, { timeoutMs: this.#timeoutMs, replay: this.#replay });
  }

  async contains(key: string, options?: OpOptions): Promise<boolean> {
    assertHexKey(key);
    const res = await this.#transport.send('HEAD', `/v1/blobs/${key}`, { signal: options?.signal });
    if (res.statusCode === 200 || res.statusCode === 404) {
      await res.body.dump();
      return res.statusCode === 200;
    }
    throw await this.#transport.failure(res, `HEAD /v1/blobs/${key}`, { key });
  }

  /** The sidecar's levels record uses as they serve; from here there is nothing more to say. */
  async touch(key: string, options?: OpOptions): Promise<boolean> {
    return this.contains(key, options);
  }

  /** DELETE through every level; ForbiddenError where the sidecar's config does not allow it. */
  async delete(key: string, options?: OpOptions): Promise<boolean> {
    assertHexKey(key);
    const action = `DELETE /v1/blobs/${key}`;
    const res = await this.#transport.send('DELETE', `/v1/blobs/${key}`, { signal: options?.signal });
    if (res.statusCode === 204) {
      await res.body.dump();
      return true;
    }
    const error = await this.#transport.failure(res, action, { key });
    if ((error as { code?: string }).code === 'TARN_NOT_FOUND') return false;
    throw error;
  }

  /** Every key, streamed as NDJSON and parsed line by line: memory stays bounded by one line. */
  async *keys(options?: OpOptions): AsyncIterable<string> {
    const action = 'GET /v1/keys';
    const res = await this.#transport.send('GET', '/v1/keys', { signal: options?.signal });
    if (res.statusCode !== 200) throw await this.#transport.failure(res, action);
    const where = this.#transport.where;
    let rest = '';
    const line = (text: string): string | undefined => {
      if (text.trim() === '') return undefined;
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch (e) {
        throw new RemoteError(where, action, new Error(`a line that is not JSON: ${(e as Error).message}`));
      }
      const k = keyLine.safeParse(parsed);
      if (!k.success) throw new RemoteError(where, action, new Error('a line that is not {"key": …}'));
      return k.data.key;
    };
    try {
      for await (const chunk of res.body) {
        rest += (chunk as Buffer).toString('utf8');
        // A line is a key of at most 128 digits: anything much longer is no key listing.
        if (rest.length > 1 << 20 && !rest.includes('\n'))
          throw new RemoteError(where, action, new Error('a line over 1 MiB'));
        let at = rest.indexOf('\n');
        while (at >= 0) {
          const key = line(rest.slice(0, at));
          rest = rest.slice(at + 1);
          if (key !== undefined) yield key;
          at = rest.indexOf('\n');
        }
      }
      const last = line(rest);
      if (last !== undefined) yield last;
    } catch (e) {
      throw remoteError(where, action, e, options?.signal);
    } finally {
      res.body.destroy();
    }
  }

  /**
   * The sidecar's lease named `name` (a Redis key or a disk lock of its tree): the single flight of
   * smartCache across every pod sharing the tree. Null when someone else holds it; UnsupportedError
   * when the sidecar's tree has nothing to lease from. `ttlMs` is kept within what the API takes.
   */
  async lease(name: string, ttlMs: number, options?: OpOptions): Promise<Lease | null> {
    if (!leaseNameParam.safeParse(name).success)
      throw new InvalidKeyError(name, 'a lease name is 1 to 128 lowercase hex digits');
    const path = `/v1/leases/${name}`;
    const ttl = Math.round(Math.min(LEASE_TTL_MAX_MS, Math.max(LEASE_TTL_MIN_MS, ttlMs)));
    const post = (body: object, signal?: AbortSignal) =>
      this.#transport.send('POST', path, {
        body: JSON.stringify(body),
        headers: { 'content-type': 'application/json' },
        signal,
      });
    const res = await post({ action: 'acquire', ttlMs: ttl }, options?.signal);
    if (res.statusCode !== 200) throw await this.#transport.failure(res, `POST ${path}`);
    const acquired = await this.#transport.json(res, leaseResult, `POST ${path}`, options?.signal);
    if (!acquired.acquired || acquired.token === undefined) return null;
    const token = acquired.token;
    return {
      renew: async () => {
        const r = await post({ action: 'renew', token });
        if (r.statusCode === 200) {
          const renewed = await this.#transport.json(r, leaseResult, `POST ${path}`);
          return renewed.acquired;
        }
        const error = await this.#transport.failure(r, `POST ${path}`);
        if ((error as { code?: string }).code === 'TARN_LEASE_LOST') return false;
        throw error;
      },
      release: async () => {
        // A release that fails (the sidecar is gone) leaves the lease to expire.
        const r = await post({ action: 'release', token }).catch(() => undefined);
        await r?.body.dump().catch(() => undefined);
      },
    };
  }

  /** The sidecar's memo index (`/v1/memo`): where smartCache maps calls to values. */
  memoIndex(): Location {
    return new SidecarMemoIndex(this.target, this.#transport.share());
  }

  describe(): Flags {
    return { paths: this.#paths };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#transport.close();
  }
}

export { SidecarMemoIndex } from './memo.js';
