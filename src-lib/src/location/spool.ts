import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import { WriteError } from '../errors.js';
import { CHUNK } from '../util/chunks.js';
import type { CommitResult, Stage, Value } from './contract.js';
import { joined, SpillBuffer, type SpillOptions } from './spill.js';

/** The staged bytes as `publish` sees them: exact size, and a stream that can be opened more than once. */
export interface Spool {
  readonly size: number;
  /** The bytes, when they are all in memory. */
  readonly memory?: Buffer;
  /** A local file holding the bytes, when they spilled to disk. */
  readonly path?: string;
  stream(): Readable;
}

export interface SpoolOptions extends SpillOptions {
  /** Refuse a value longer than this (after reading at most this + 1 chunk). */
  maxSize?: number;
}

/**
 * A stage for locations that must know the key (and often the size) before they can send a byte:
 * S3 names the object by the key, Redis sets a whole value, scp announces the length first. The
 * bytes are kept locally (memory up to `memoryLimit`, then a private temp file) and handed to
 * `publish` at commit. A refusal replays them from there, so nothing is lost and nothing large
 * is ever held in memory.
 */
export class SpoolStage implements Stage {
  readonly #publish: (key: string, spool: Spool) => Promise<CommitResult>;
  readonly #max: number;
  readonly #bytes: SpillBuffer;
  #held: Uint8Array | undefined;
  #state: 'open' | 'publishing' | 'refused' | 'closed' = 'open';

  constructor(publish: (key: string, spool: Spool) => Promise<CommitResult>, options: SpoolOptions = {}) {
    this.#publish = publish;
    this.#max = options.maxSize ?? Number.POSITIVE_INFINITY;
    this.#bytes = new SpillBuffer('tarn-spool', options);
  }

  async push(chunk: Uint8Array): Promise<boolean> {
    if (this.#state !== 'open') throw new WriteError('push after the stage was refused or closed');
    if (this.#bytes.size + chunk.byteLength > this.#max) {
      this.#held = chunk;
      this.#state = 'refused';
      return false;
    }
    await this.#bytes.append(chunk);
    return true;
  }

  async #spool(): Promise<Spool> {
    const size = this.#bytes.size;
    const sealed = await this.#bytes.seal();
    if ('path' in sealed) {
      const { path } = sealed;
      return { size, path, stream: () => createReadStream(path, { highWaterMark: CHUNK }) };
    }
    const { memory } = sealed;
    return { size, memory, stream: () => Readable.from([memory]) };
  }

  async commit(key: string): Promise<CommitResult> {
    if (this.#state !== 'open') throw new WriteError('commit after the stage was refused or closed');
    this.#state = 'publishing';
    let result: CommitResult;
    try {
      result = await this.#publish(key, await this.#spool());
    } catch (e) {
      // The spool still holds every byte: a combinator may hand them to another location (reclaim);
      // abort() releases them.
      this.#state = 'refused';
      throw e;
    }
    if (result.status === 'refused') {
      this.#state = 'refused';
      return result;
    }
    await this.#cleanup();
    return result;
  }

  /** After a refusal, a failed commit, or instead of a commit: every byte pushed, once. */
  async *reclaim(): AsyncIterable<Uint8Array> {
    if (this.#state !== 'refused' && this.#state !== 'open')
      throw new WriteError('reclaim after the stage was committed or closed');
    this.#state = 'closed';
    try {
      yield* this.#bytes.replay();
      if (this.#held) yield this.#held;
    } finally {
      await this.#cleanup();
    }
  }

  async abort(): Promise<void> {
    if (this.#state === 'closed') return;
    await this.#cleanup();
  }

  async #cleanup(): Promise<void> {
    this.#state = 'closed';
    this.#held = undefined;
    await this.#bytes.discard();
  }
}

/**
 * The stage of a small value whose size is known up front (a Buffer written, a Small's value): its
 * chunks are kept as pushed and handed to `publish` as one Buffer at commit, so a location can send
 * it in a single request (Redis `SET NX`, S3's conditional PutObject) with no spool between. A
 * value that outgrows `maxSize` is refused at that chunk, like SpoolStage; a refusal or a failed
 * commit replays every byte.
 */
export class MemoryStage implements Stage {
  readonly #publish: (key: string, bytes: Buffer) => Promise<CommitResult>;
  readonly #max: number;
  #parts: Uint8Array[] = [];
  #size = 0;
  #held: Uint8Array | undefined;
  #state: 'open' | 'publishing' | 'refused' | 'closed' = 'open';

  constructor(publish: (key: string, bytes: Buffer) => Promise<CommitResult>, maxSize: number) {
    this.#publish = publish;
    this.#max = maxSize;
  }

  async push(chunk: Uint8Array): Promise<boolean> {
    if (this.#state !== 'open') throw new WriteError('push after the stage was refused or closed');
    if (this.#size + chunk.byteLength > this.#max) {
      this.#held = chunk;
      this.#state = 'refused';
      return false;
    }
    this.#parts.push(chunk);
    this.#size += chunk.byteLength;
    return true;
  }

  async commit(key: string): Promise<CommitResult> {
    if (this.#state !== 'open') throw new WriteError('commit after the stage was refused or closed');
    this.#state = 'publishing';
    let result: CommitResult;
    try {
      result = await this.#publish(key, joined(this.#parts, this.#size));
    } catch (e) {
      // The bytes are still here: a combinator may hand them on (reclaim); abort() drops them.
      this.#state = 'refused';
      throw e;
    }
    if (result.status === 'refused') this.#state = 'refused';
    else this.#drop();
    return result;
  }

  async *reclaim(): AsyncIterable<Uint8Array> {
    if (this.#state !== 'refused' && this.#state !== 'open')
      throw new WriteError('reclaim after the stage was committed or closed');
    const parts = this.#parts;
    const held = this.#held;
    this.#drop();
    yield* parts;
    if (held) yield held;
  }

  async abort(): Promise<void> {
    this.#drop();
  }

  #drop(): void {
    this.#state = 'closed';
    this.#parts = [];
    this.#held = undefined;
  }
}

/** A value held in memory (Redis answers, small remote reads). */
export function memoryValue(data: Buffer): Value {
  return {
    size: data.byteLength,
    stream: () => Readable.from([data]),
    bytes: async () => data,
    close: async () => undefined,
  };
}
