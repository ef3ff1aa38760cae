import type { IncomingMessage, ServerResponse } from 'node:http';
import { formatSize, ServiceError, SourceError } from '@tarnjs/tarn';

/** The body's declared length; a malformed header never reaches here (Node's parser refuses it). */
export function declaredLength(request: IncomingMessage): number | undefined {
  const header = request.headers['content-length'];
  if (header === undefined) return undefined;
  const n = Number(header);
  return Number.isSafeInteger(n) && n >= 0 ? n : undefined;
}

const CONTINUE = Symbol('tarn.continue');
type Waiting = IncomingMessage & { [CONTINUE]?: () => void };

/**
 * A request that asked `Expect: 100-continue` gets its `100 Continue` only when its body is first
 * read (`CountedBody.chunks`): a body refused before that (over the limit by its Content-Length,
 * no upload slot) is then never sent by the client at all.
 */
export function continueOnRead(request: IncomingMessage, response: ServerResponse): void {
  (request as Waiting)[CONTINUE] = () => {
    if (!response.headersSent && !response.writableEnded) response.writeContinue();
  };
}

export function tooLarge(limit: number, what = 'the body'): ServiceError {
  return new ServiceError(
    'TARN_TOO_LARGE',
    `${what} is over the limit of ${formatSize(limit)}; nothing was stored`,
  );
}

/**
 * A request body read as it streams, counted against a limit: the library reads `chunks()` like
 * any stream source, and the count makes that read fail (so the library's write fails and leaves
 * nothing) once the body passes the limit or ends before its Content-Length.
 */
export class CountedBody {
  bytes = 0;
  /** The body was read to its end, and had the length it announced. */
  ended = false;
  readonly declared: number | undefined;

  constructor(
    private readonly raw: IncomingMessage,
    private readonly limit: number,
    private readonly what = 'the body',
  ) {
    this.declared = declaredLength(raw);
  }

  /** Refuses a body whose declared length is already over the limit, before a byte is read. */
  checkDeclared(): void {
    if (this.declared !== undefined && this.declared > this.limit) throw tooLarge(this.limit, this.what);
  }

  async *chunks(): AsyncGenerator<Uint8Array> {
    const waiting = this.raw as Waiting;
    waiting[CONTINUE]?.();
    waiting[CONTINUE] = undefined;
    // Not destroyed when the reader stops early (a refusal, a value found stored): the socket
    // must stay up to carry the answer.
    for await (const chunk of this.raw.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
      this.bytes += chunk.byteLength;
      if (this.bytes > this.limit) throw tooLarge(this.limit, this.what);
      yield chunk;
    }
    if (this.declared !== undefined && this.bytes !== this.declared)
      throw new SourceError(
        `${this.what} ended after ${this.bytes} of the ${this.declared} bytes its Content-Length announced; nothing was stored`,
      );
    this.ended = true;
  }

  /** The whole body in memory: for small bodies (memo entries), under the limit. */
  async buffer(): Promise<Buffer> {
    const parts: Uint8Array[] = [];
    for await (const chunk of this.chunks()) parts.push(chunk);
    return Buffer.concat(parts);
  }

  /** Reads (and drops) what is left of the body, counting it: its full size. */
  async drain(): Promise<number> {
    if (!this.ended) for await (const _ of this.chunks());
    return this.bytes;
  }
}
