import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import { WriteError } from '../errors.js';
import { CHUNK } from '../util/chunks.js';
import type { CommitResult, Stage, Value } from './contract.js';
import { SpillBuffer, type SpillOptions } from './spill.js';

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

/** A value held in memory (Redis answers, small remote reads). */
export function memoryValue(data: Buffer): Value {
  return {
    size: data.byteLength,
    stream: () => Readable.from([data]),
    bytes: async () => data,
    close: async () => undefined,
  };
}
