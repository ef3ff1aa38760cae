import { createReadStream } from 'node:fs';
import { type FileHandle, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CHUNK, writeFully } from '../../util/chunks.js';
import { ownedName } from '../../util/process.js';

export interface ReplayOptions {
  /** Keep up to this many bytes in memory, then spill to a private temp file (default 8 MiB). */
  memoryLimit?: number;
  /** Folder of the temp file (default the OS temp folder). */
  tmpDir?: string;
}

/**
 * A copy of the bytes an upload has sent, so that a refusal (or a sidecar gone midway) can hand
 * them back (`Stage.reclaim`): small values in memory, larger ones in a temp file written as the
 * bytes go out. Never more than `memoryLimit` in memory.
 */
export class ReplayLog {
  readonly #memoryLimit: number;
  readonly #tmpDir: string;
  #parts: Buffer[] = [];
  #size = 0;
  #file: { path: string; fh: FileHandle } | undefined;

  constructor(options: ReplayOptions = {}) {
    this.#memoryLimit = options.memoryLimit ?? 8 * CHUNK;
    this.#tmpDir = options.tmpDir ?? tmpdir();
  }

  get size(): number {
    return this.#size;
  }

  async append(chunk: Uint8Array): Promise<void> {
    if (!this.#file && this.#size + chunk.byteLength > this.#memoryLimit) {
      const path = join(this.#tmpDir, ownedName('tarn-upload'));
      const fh = await open(path, 'wx', 0o600);
      this.#file = { path, fh };
      for (const part of this.#parts) await writeFully(fh, part);
      this.#parts = [];
    }
    // A copy: the caller may reuse its buffer once the push has answered.
    if (this.#file) await writeFully(this.#file.fh, chunk);
    else this.#parts.push(Buffer.from(chunk));
    this.#size += chunk.byteLength;
  }

  /** Every byte appended, once; the log is discarded afterwards (or when the consumer stops). */
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
