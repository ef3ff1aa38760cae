import { PassThrough } from 'node:stream';
import type { Dispatcher } from 'undici';
import { AbortError, WriteError } from '../../errors.js';
import { CHUNK } from '../../util/chunks.js';
import type { CommitResult, Stage, StageOptions } from '../contract.js';
import { RemoteError } from '../remote-error.js';
import { SpillBuffer, type SpillOptions } from '../spill.js';
import { HEADERS, putResult } from './api.js';
import type { SidecarTransport } from './http.js';

type Answer = { res: Dispatcher.ResponseData } | { error: unknown };

/** Statuses that refuse the value itself (507: every level refused; 413: over the body limit). */
const REFUSALS = new Set([507, 413]);

/**
 * A write through the sidecar: the pushed chunks are the body of one `PUT /v1/blobs`, started at the
 * first push and streamed with backpressure (a push answers once the socket has taken the chunk, or
 * once the request's buffer has room), so the value is never held whole here nor there. The sidecar
 * hashes what it receives; commit checks that its key is the caller's.
 *
 * Every pushed byte is also kept for `reclaim` (memory up to a limit, then a temp file: SpillBuffer),
 * because the contract wants a refusal (507, 413) to hand the bytes back, and a combinator moves a
 * value on when the sidecar goes away mid-upload. With `replay: false` nothing is kept: a refusal
 * then fails the commit with a WriteError, and reclaim throws WriteError (the contract allows it).
 */
export class UploadStage implements Stage {
  readonly #transport: SidecarTransport;
  readonly #options: StageOptions;
  readonly #timeoutMs: number;
  readonly #replay: SpillBuffer | undefined;
  readonly #controller = new AbortController();
  #body: PassThrough | undefined;
  #response: Promise<Answer> | undefined;
  #answer: Answer | undefined;
  #refusal: string | undefined;
  #state: 'open' | 'committing' | 'refused' | 'failed' | 'closed' = 'open';

  constructor(
    transport: SidecarTransport,
    options: StageOptions,
    settings: { timeoutMs: number; replay: SpillOptions | false },
  ) {
    this.#transport = transport;
    this.#options = options;
    this.#timeoutMs = settings.timeoutMs;
    this.#replay = settings.replay === false ? undefined : new SpillBuffer('tarn-upload', settings.replay);
  }

  #start(): { body: PassThrough; response: Promise<Answer> } {
    if (this.#body && this.#response) return { body: this.#body, response: this.#response };
    const body = new PassThrough({ highWaterMark: CHUNK });
    // undici destroys the body when the request ends early; the request's own outcome says why.
    body.on('error', () => undefined);
    const headers: Record<string, string> = { 'content-type': 'application/octet-stream' };
    if (this.#options.key !== undefined) headers[HEADERS.expectedKey] = this.#options.key;
    if (this.#options.size !== undefined) headers['content-length'] = String(this.#options.size);
    const signal = this.#options.signal
      ? AbortSignal.any([this.#options.signal, this.#controller.signal])
      : this.#controller.signal;
    const response = this.#transport
      .send('PUT', '/v1/blobs', { body, headers, signal, noHeadersTimeout: true })
      .then(
        (res): Answer => ({ res }),
        (error: unknown): Answer => ({ error }),
      )
      .then((a) => {
        this.#answer = a;
        return a;
      });
    this.#body = body;
    this.#response = response;
    return { body, response };
  }

  async push(chunk: Uint8Array): Promise<boolean> {
    if (this.#state !== 'open') throw new WriteError('push after the stage was committed, refused or closed');
    const { body, response } = this.#start();
    await this.#replay?.append(chunk);
    if (this.#answer || !body.write(chunk)) {
      if (!this.#answer) await Promise.race([drained(body), response]);
      // An answer before the end of the body: a refusal (the value is too large, every level is
      // full), or a failure.
      if (this.#answer) return this.#early(this.#answer);
    }
    return true;
  }

  /** An answer that came before the body ended: false for a refusal, else the failure, thrown. */
  async #early(answer: Answer): Promise<boolean> {
    if ('res' in answer && REFUSALS.has(answer.res.statusCode)) {
      this.#refusal = await this.#reason(answer.res);
      this.#state = 'refused';
      if (!this.#replay) throw this.#unkept();
      return false;
    }
    this.#state = 'failed';
    throw 'error' in answer
      ? answer.error
      : await this.#transport.failure(answer.res, 'PUT /v1/blobs', { expected: this.#options.key });
  }

  async commit(key: string): Promise<CommitResult> {
    if (this.#state === 'refused' && this.#refusal !== undefined)
      return { status: 'refused', reason: this.#refusal };
    if (this.#state !== 'open') throw new WriteError('commit after the stage was committed or closed');
    this.#state = 'committing';
    const { body, response } = this.#start();
    body.end();
    const answer = await this.#within(response);
    if ('error' in answer) {
      this.#state = 'failed';
      throw answer.error;
    }
    const { res } = answer;
    if (res.statusCode === 201) {
      let put: { key: string; status: 'stored' | 'existed' };
      try {
        put = await this.#transport.json(res, putResult, 'PUT /v1/blobs', this.#options.signal);
      } catch (e) {
        this.#state = 'failed';
        throw e;
      }
      if (put.key !== key) {
        this.#state = 'failed';
        throw new WriteError(
          `the sidecar ${this.#transport.where} received bytes that hash to ${put.key}, not to ${key}: ` +
            'they changed in transit, or the sidecar’s storage uses another digest',
        );
      }
      await this.#replay?.discard();
      this.#state = 'closed';
      return { status: put.status };
    }
    if (REFUSALS.has(res.statusCode)) {
      this.#refusal = await this.#reason(res);
      this.#state = 'refused';
      if (!this.#replay) throw this.#unkept();
      return { status: 'refused', reason: this.#refusal };
    }
    this.#state = 'failed';
    throw await this.#transport.failure(res, 'PUT /v1/blobs', { key, expected: this.#options.key ?? key });
  }

  /** The answer, or a RemoteError once the request timeout passes without one (the request is cut). */
  async #within(response: Promise<Answer>): Promise<Answer> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<Answer>((resolve) => {
      timer = setTimeout(() => {
        this.#controller.abort();
        resolve({
          error: new RemoteError(
            this.#transport.where,
            'PUT /v1/blobs',
            new Error(`no answer within ${this.#timeoutMs} ms of the last byte`),
          ),
        });
      }, this.#timeoutMs);
    });
    try {
      const answer = await Promise.race([response, timeout]);
      if ('error' in answer && this.#options.signal?.aborted)
        return { error: new AbortError(this.#options.signal.reason) };
      return answer;
    } finally {
      clearTimeout(timer);
    }
  }

  async #reason(res: Dispatcher.ResponseData): Promise<string> {
    const e = await this.#transport.failure(res, 'PUT /v1/blobs');
    const cause = (e as { cause?: unknown }).cause;
    return `${this.#transport.where}: ${cause instanceof Error ? cause.message : e.message}`;
  }

  #unkept(): WriteError {
    return new WriteError(
      `${this.#refusal ?? 'the sidecar refused the value'}; its bytes were not kept (replay: false), so they cannot be handed on`,
    );
  }

  /**
   * The pushed bytes, once: after a refusal, a failed commit, or instead of a commit (then the
   * upload in flight is cut, and the sidecar stores nothing of it).
   */
  async *reclaim(): AsyncIterable<Uint8Array> {
    if (this.#state === 'closed' || this.#state === 'committing')
      throw new WriteError('reclaim after the stage was committed or closed');
    if (!this.#replay) throw new WriteError('this sidecar stage keeps no copy of its bytes (replay: false)');
    const replay = this.#replay;
    this.#state = 'closed';
    this.#cut();
    yield* replay.replay();
  }

  async abort(): Promise<void> {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    this.#cut();
    await this.#replay?.discard();
  }

  /** Ends the request in flight, if any, so that the sidecar stores nothing of it. */
  #cut(): void {
    if (!this.#answer) this.#controller.abort();
    this.#body?.destroy();
    if (this.#answer && 'res' in this.#answer) this.#answer.res.body.destroy();
  }
}

/** Resolves when the stream has room again, or has closed. */
function drained(stream: PassThrough): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      stream.off('drain', done);
      stream.off('close', done);
      resolve();
    };
    stream.on('drain', done);
    stream.on('close', done);
  });
}
