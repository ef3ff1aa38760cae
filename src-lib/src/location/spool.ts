import { createReadStream } from 'node:fs';
import { type FileHandle, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { WriteError } from '../errors.js';
import { CHUNK, writeFully } from '../util/chunks.js';
import { ownedName } from '../util/process.js';
import type { CommitResult, Stage, Value } from './contract.js';

/** The staged bytes as `publish` sees them: exact size, and a stream that can be opened more than once. */
export interface Spool {
  readonly size: number;
  /** The bytes, when they are all in memory. */
  readonly memory?: Buffer;
  /** A local file holding the bytes, when they spilled to disk. */
  readonly path?: string;
  stream(): Readable;
}

export interface SpoolOptions {
  /** Refuse a value longer than this (after reading at most this + 1 chunk). */
  maxSize?: number;
  /** Keep up to this many bytes in memory before spilling to a temp file (default 8 MiB). */
  memoryLimit?: number;
  /** Folder of the temp file (default the OS temp folder). */
  tmpDir?: string;
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
  readonly #memoryLimit: number;
  readonly #tmpDir: string;
  #parts: Buffer[] = [];
  #size = 0;
  #file: { path: string; fh: FileHandle } | undefined;
  #held: Uint8Array | undefined;
  #state: 'open' | 'publishing' | 'refused' | 'closed' = 'open';

  constructor(publish: (key: string, spool: Spool) => Promise<CommitResult>, options: SpoolOptions = {}) {
    this.#publish = publish;
    this.#max = options.maxSize ?? Number.POSITIVE_INFINITY;
    this.#memoryLimit = options.memoryLimit ?? 8 * CHUNK;
    this.#tmpDir = options.tmpDir ?? tmpdir();
  }

  async push(chunk: Uint8Array): Promise<boolean> {
    if (this.#state !== 'open') throw new WriteError('push after the stage was refused or closed');
    if (this.#size + chunk.byteLength > this.#max) {
      this.#held = chunk;
      this.#state = 'refused';
      return false;
    }
    if (!this.#file && this.#size + chunk.byteLength > this.#memoryLimit) {
      const path = join(this.#tmpDir, ownedName('tarn-spool'));
      const fh = await open(path, 'wx', 0o600);
      this.#file = { path, fh };
      for (const part of this.#parts) await writeFully(fh, part);
      this.#parts = [];
    }
    if (this.#file) await writeFully(this.#file.fh, chunk);
    else this.#parts.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    this.#size += chunk.byteLength;
    return true;
  }

  #spool(): Spool {
    const size = this.#size;
    if (this.#file) {
      const path = this.#file.path;
      return { size, path, stream: () => createReadStream(path, { highWaterMark: CHUNK }) };
    }
    const memory = Buffer.concat(this.#parts, size);
    return { size, memory, stream: () => Readable.from([memory]) };
  }

  async commit(key: string): Promise<CommitResult> {
    if (this.#state !== 'open') throw new WriteError('commit after the stage was refused or closed');
    await this.#file?.fh.close();
    this.#state = 'publishing';
    let result: CommitResult;
    try {
      result = await this.#publish(key, this.#spool());
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
      if (this.#file) {
        await this.#file.fh.close().catch(() => undefined);
        for await (const chunk of createReadStream(this.#file.path, { highWaterMark: CHUNK }))
          yield chunk as Buffer;
      } else {
        yield* this.#parts;
      }
      if (this.#held) yield this.#held;
    } finally {
      await this.#cleanup();
    }
  }

  async abort(): Promise<void> {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    await this.#cleanup();
  }

  async #cleanup(): Promise<void> {
    this.#state = 'closed';
    this.#parts = [];
    if (this.#file) {
      await this.#file.fh.close().catch(() => undefined);
      await rm(this.#file.path, { force: true });
      this.#file = undefined;
    }
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
