import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import type { OpOptions, Value } from './location.js';
import { CHUNK } from './util/chunks.js';

/** A value that is a local file: the disk location's blobs, and remote values copied to a temp file. */
export class FileValue implements Value {
  constructor(
    readonly path: string,
    readonly size: number,
    private readonly onClose?: () => Promise<void>,
  ) {}

  stream(options?: OpOptions): Readable {
    return createReadStream(this.path, { highWaterMark: CHUNK, signal: options?.signal });
  }

  async close(): Promise<void> {
    await this.onClose?.();
  }
}
