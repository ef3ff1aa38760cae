import { IncomingMessage, ServerResponse } from 'node:http';

/**
 * The server's request and response classes (Node's `http.createServer` options): they count the
 * bytes of each body as they pass and note when the request's headers arrived, for the metrics.
 * Counting in the classes costs an addition per chunk; wrapping `push`, `write` and `end` per
 * request (three closures and a WeakMap entry each time) was measurable on 1 KiB GETs.
 */
export class CountedRequest extends IncomingMessage {
  /** When the headers were parsed (hrtime, ns). */
  readonly startedAt = process.hrtime.bigint();
  /** Bytes of the body received so far. The HTTP parser hands each body chunk to `push`. */
  bytesIn = 0;

  override push(chunk: unknown, encoding?: BufferEncoding): boolean {
    if (chunk) this.bytesIn += byteLengthOf(chunk, encoding);
    return super.push(chunk, encoding);
  }
}

export class CountedResponse<R extends IncomingMessage = IncomingMessage> extends ServerResponse<R> {
  /** Bytes of the answer's body given to write/end so far (headers not included). */
  bytesOut = 0;

  override write(chunk: unknown, ...rest: unknown[]): boolean {
    this.bytesOut += byteLengthOf(chunk, rest[0]);
    return (super.write as (...a: unknown[]) => boolean)(chunk, ...rest);
  }

  override end(chunk?: unknown, ...rest: unknown[]): this {
    if (typeof chunk !== 'function') this.bytesOut += byteLengthOf(chunk, rest[0]);
    (super.end as (...a: unknown[]) => unknown)(chunk, ...rest);
    return this;
  }
}

function byteLengthOf(chunk: unknown, encoding: unknown): number {
  if (typeof chunk === 'string')
    return Buffer.byteLength(chunk, typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8');
  return (chunk as ArrayBufferView | null | undefined)?.byteLength ?? 0;
}
