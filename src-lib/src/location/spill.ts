import { createReadStream } from 'node:fs';
import { type FileHandle, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CHUNK, writeFully } from '../util/chunks.js';
import { ownedName } from '../util/process.js';

export interface SpillOptions {
  /** Keep up to this many bytes in memory, then spill to a private temp file (default 8 MiB). */
  memoryLimit?: number;
  /** Folder of the temp file (default the OS temp folder). */
  tmpDir?: string;
}

/**
 * Bytes kept aside while they go somewhere else, to be handed on again: a spool (S3, Redis, scp
 * send them at commit) or the copy an upload keeps for a refusal. Memory up to `memoryLimit`, then
 * a private temp file, so nothing large is ever held in memory. Chunks are kept as given (a pushed
 * chunk belongs to its stage: see `Stage.push`).
 */
export class SpillBuffer {
  readonly #memoryLimit: number;
  readonly #tmpDir: string | undefined;
  readonly #prefix: string;
  #parts: Uint8Array[] = [];
  #size = 0;
  #file: { path: string; fh: FileHandle } | undefined;

  constructor(prefix: string, options: SpillOptions = {}) {
    this.#prefix = prefix;
    this.#memoryLimit = options.memoryLimit ?? 8 * CHUNK;
    // os.tmpdir() is looked up only when a value spills: it reads the environment on every call,
    // which was 8% of the CPU of a 1 KiB Redis write that never touches a file.
    this.#tmpDir = options.tmpDir;
  }

  get size(): number {
    return this.#size;
  }

  async append(chunk: Uint8Array): Promise<void> {
    if (!this.#file && this.#size + chunk.byteLength > this.#memoryLimit) {
      const path = join(this.#tmpDir ?? tmpdir(), ownedName(this.#prefix));
      const fh = await open(path, 'wx', 0o600);
      this.#file = { path, fh };
      for (const part of this.#parts) await writeFully(fh, part);
      this.#parts = [];
    }
    if (this.#file) await writeFully(this.#file.fh, chunk);
    else this.#parts.push(chunk);
    this.#size += chunk.byteLength;
  }

  /** Done appending: the bytes in one buffer, or the (closed) file that holds them. */
  async seal(): Promise<{ memory: Buffer } | { path: string }> {
    if (!this.#file) return { memory: joined(this.#parts, this.#size) };
    await this.#file.fh.close().catch(() => undefined);
    return { path: this.#file.path };
  }

  /** Every byte appended, once; the buffer is discarded afterwards (or when the consumer stops). */
  async *replay(): AsyncGenerator<Uint8Array> {
    try {
      if (this.#file) {
        await this.#file.fh.close().catch(() => undefined);
        for await (const chunk of createReadStream(this.#file.path, { highWaterMark: CHUNK }))
          yield chunk as Buffer;
      } else {
        yield* this.#parts;
      }
    } finally {
      await this.discard();
    }
  }

  async discard(): Promise<void> {
    this.#parts = [];
    const file = this.#file;
    this.#file = undefined;
    if (file) {
      await file.fh.close().catch(() => undefined);
      await rm(file.path, { force: true });
    }
  }
}

/**
 * The parts as one Buffer. A single part (a value pushed whole, the usual small write) is viewed,
 * not copied: the stage owns its chunks (Stage.push), so nobody changes it under us.
 */
export function joined(parts: readonly Uint8Array[], size: number): Buffer {
  const [only] = parts;
  if (parts.length === 1 && only) return Buffer.from(only.buffer, only.byteOffset, only.byteLength);
  return Buffer.concat(parts, size);
}
