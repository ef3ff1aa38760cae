import { type Readable, Transform, type TransformCallback } from 'node:stream';
import type { Digest } from './digest.js';
import type { StorageCorruption } from './errors.js';
import type { OpOptions, Value } from './location.js';

/**
 * What `HashKeyStorage.read` hands out: the bytes as a local path (when they are on local
 * disk), a stream, or a buffer. Use it with `await using`, or call `close()`.
 */
export class StoredValue implements AsyncDisposable {
  #verified: boolean;

  constructor(
    readonly key: string,
    private readonly value: Value,
    private readonly digest: Digest,
    verify: boolean,
    private readonly onCorrupt: (actual: string) => Promise<StorageCorruption>,
  ) {
    this.#verified = !verify;
  }

  /** A read-only local file with exactly the value's bytes, or undefined when the bytes are remote. */
  get path(): string | undefined {
    return this.value.path;
  }

  /** Byte count, when the location knows it without reading. */
  get size(): number | undefined {
    return this.value.size;
  }

  /**
   * The bytes as a Node stream. With verification on, the bytes are hashed as they pass and the
   * stream fails with StorageCorruption at its end if they do not match the key.
   */
  stream(options?: OpOptions): Readable {
    const raw = this.value.stream(options);
    if (this.#verified) return raw;
    const h = this.digest.create();
    const check = new Transform({
      transform: (chunk: Buffer, _enc, cb: TransformCallback) => {
        h.update(chunk);
        cb(null, chunk);
      },
      flush: (cb: TransformCallback) => {
        const actual = h.digest('hex');
        if (actual === this.key) {
          this.#verified = true;
          cb();
        } else {
          this.onCorrupt(actual).then(cb, cb);
        }
      },
    });
    raw.on('error', (e) => check.destroy(e));
    return raw.pipe(check);
  }

  /** The whole value in memory: for small values. */
  async bytes(options?: OpOptions): Promise<Buffer> {
    const parts: Buffer[] = [];
    for await (const chunk of this.stream(options)) parts.push(chunk as Buffer);
    return Buffer.concat(parts);
  }

  async text(options?: OpOptions): Promise<string> {
    return (await this.bytes(options)).toString('utf8');
  }

  /** Hashes the whole value now (used before handing out a path that bypasses our streams). */
  async verify(options?: OpOptions): Promise<void> {
    if (this.#verified) return;
    for await (const _ of this.stream(options)) {
      // drain: the stream's flush compares the digest
    }
  }

  async close(): Promise<void> {
    await this.value.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
