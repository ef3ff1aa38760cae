import { InvalidKeyError, UnsupportedError, WriteError } from '../../errors.js';
import type { CommitResult, Location, OpOptions, Stage, StageOptions, Value } from '../contract.js';
import { RemoteError } from '../remote-error.js';
import { memoryValue } from '../spool.js';
import { callKeyParam, MEMO_ENTRY_MAX, memoPutResult } from './api.js';
import type { SidecarTransport } from './http.js';

/**
 * The sidecar's memo index (`/v1/memo/{callKey}`) as a Location, so smartCache in any process of any
 * pod uses the index of the sidecar's config (Redis, S3, a lake) without knowing which. Entries are
 * small JSON documents (at most 64 KiB): read and written whole.
 *
 * Not listable (the API has no listing of entries): `keys()` throws UnsupportedError rather than
 * pretend the index is empty. A sidecar whose config has no memo index answers UnsupportedError.
 */
export class SidecarMemoIndex implements Location {
  readonly kind = 'sidecar-memo';
  readonly target: string;
  readonly #transport: SidecarTransport;
  #closed = false;

  /** Made by `SidecarLocation.memoIndex()`, which shares its connections. */
  constructor(socket: string, transport: SidecarTransport) {
    this.target = socket;
    this.#transport = transport;
  }

  #path(callKey: string): string {
    if (!callKeyParam.safeParse(callKey).success)
      throw new InvalidKeyError(callKey, 'a call key is 64 lowercase hex digits (sha256)');
    return `/v1/memo/${callKey}`;
  }

  async read(key: string, options?: OpOptions): Promise<Value | null> {
    const path = this.#path(key);
    const res = await this.#transport.send('GET', path, { signal: options?.signal });
    if (res.statusCode !== 200) {
      const error = await this.#transport.failure(res, `GET ${path}`, { key });
      if ((error as { code?: string }).code === 'TARN_NOT_FOUND') return null;
      throw error;
    }
    const parts: Buffer[] = [];
    let size = 0;
    for await (const chunk of res.body) {
      size += (chunk as Buffer).byteLength;
      // An entry is bounded by the API: a longer answer is no entry, and is not held.
      if (size > MEMO_ENTRY_MAX) {
        res.body.destroy();
        throw new RemoteError(
          this.#transport.where,
          `GET ${path}`,
          new Error(`an entry over ${MEMO_ENTRY_MAX} bytes`),
        );
      }
      parts.push(chunk as Buffer);
    }
    return memoryValue(Buffer.concat(parts, size));
  }

  async stage(options: StageOptions = {}): Promise<Stage | null> {
    if (options.key !== undefined) this.#path(options.key);
    if ((options.size ?? 0) > MEMO_ENTRY_MAX) return null;
    return new EntryStage((key, entry) => this.#put(key, entry, options));
  }

  async #put(key: string, entry: Buffer, options: OpOptions): Promise<CommitResult> {
    const path = this.#path(key);
    const res = await this.#transport.send('PUT', path, {
      body: entry,
      headers: { 'content-type': 'application/octet-stream' },
      signal: options.signal,
    });
    if (res.statusCode === 201) {
      const put = await this.#transport.json(res, memoPutResult, `PUT ${path}`, options.signal);
      return { status: put.status };
    }
    const error = await this.#transport.failure(res, `PUT ${path}`, { key });
    // Over the entry limit: a refusal (the caller keeps its result, uncached).
    if (res.statusCode === 413) return { status: 'refused', reason: error.message };
    // 409: another entry is stored under the call key (CollisionError; it stays).
    throw error;
  }

  async contains(key: string, options?: OpOptions): Promise<boolean> {
    const value = await this.read(key, options);
    return value !== null;
  }

  async touch(key: string, options?: OpOptions): Promise<boolean> {
    return this.contains(key, options);
  }

  async delete(key: string, options?: OpOptions): Promise<boolean> {
    const path = this.#path(key);
    const res = await this.#transport.send('DELETE', path, { signal: options?.signal });
    if (res.statusCode === 204) {
      await res.body.dump();
      return true;
    }
    const error = await this.#transport.failure(res, `DELETE ${path}`, { key });
    if ((error as { code?: string }).code === 'TARN_NOT_FOUND') return false;
    throw error;
  }

  // biome-ignore lint/correctness/useYield: throws before yielding, by design
  async *keys(): AsyncIterable<string> {
    throw new UnsupportedError(
      `the memo index of ${this.#transport.where} cannot be listed (the sidecar API has no listing of entries)`,
    );
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#transport.close();
  }
}

/** An entry being written: buffered (it is small), sent whole at commit. */
class EntryStage implements Stage {
  #parts: Buffer[] = [];
  #size = 0;
  #held: Uint8Array | undefined;
  #state: 'open' | 'refused' | 'closed' = 'open';

  constructor(private readonly publish: (key: string, entry: Buffer) => Promise<CommitResult>) {}

  async push(chunk: Uint8Array): Promise<boolean> {
    if (this.#state !== 'open') throw new WriteError('push after the stage was refused or closed');
    if (this.#size + chunk.byteLength > MEMO_ENTRY_MAX) {
      this.#held = chunk;
      this.#state = 'refused';
      return false;
    }
    this.#parts.push(Buffer.from(chunk));
    this.#size += chunk.byteLength;
    return true;
  }

  async commit(key: string): Promise<CommitResult> {
    if (this.#state !== 'open') throw new WriteError('commit after the stage was refused or closed');
    let result: CommitResult;
    try {
      result = await this.publish(key, Buffer.concat(this.#parts, this.#size));
    } catch (e) {
      this.#state = 'refused'; // the bytes stay for reclaim
      throw e;
    }
    if (result.status === 'refused') this.#state = 'refused';
    else this.#close();
    return result;
  }

  async *reclaim(): AsyncIterable<Uint8Array> {
    if (this.#state === 'closed') throw new WriteError('reclaim after the stage was committed or closed');
    const parts = this.#parts;
    const held = this.#held;
    this.#close();
    yield* parts;
    if (held) yield held;
  }

  async abort(): Promise<void> {
    this.#close();
  }

  #close(): void {
    this.#state = 'closed';
    this.#parts = [];
    this.#held = undefined;
  }
}
