import type { Readable } from 'node:stream';
import type { Agent, Dispatcher } from 'undici';
import type { z } from 'zod';
import {
  AbortError,
  CollisionError,
  ConfigError,
  ForbiddenError,
  InvalidKeyError,
  IoError,
  KeyMismatchError,
  LeaseLostError,
  NoLocalCopyError,
  NotFoundError,
  PartialDeleteError,
  ReadError,
  RefusedError,
  SERVICE_CODES,
  type ServiceCode,
  ServiceError,
  SocketInUseError,
  SourceError,
  StorageCorruption,
  TarnError,
  UnsupportedError,
  UsageError,
  WriteError,
} from '../../errors.js';
import { CacheKeyError, MemoError } from '../../memo/errors.js';
import { Lazy } from '../../util/lazy.js';
import { RemoteError, remoteError } from '../remote-error.js';
import { HEADERS, type ProblemBody, problem } from './api.js';

/** How the transport is set up (the `sidecar` config kind's fields, in code). */
export interface SidecarTransportOptions {
  /** Connections kept open to the sidecar (default 16). */
  connections?: number;
  /** Give up on a request that gets no answer (or no byte of its body) this long (default 60 s). */
  requestTimeoutMs?: number;
  /** How long an idle connection stays open (default 10 s). */
  keepAliveTimeoutMs?: number;
}

export type Method = 'GET' | 'HEAD' | 'PUT' | 'POST' | 'DELETE';

export interface SendOptions {
  headers?: Record<string, string>;
  /** Bytes, a JSON text, or a stream (sent as it comes, never buffered here). */
  body?: string | Buffer | Readable | null;
  signal?: AbortSignal;
  /** Disables undici's headers timeout (an upload's answer comes only after its last byte). */
  noHeadersTimeout?: boolean;
}

/** Undici's ever-present dummy origin: the socket, not the host name, says where requests go. */
const ORIGIN = 'http://tarn.sidecar';

/**
 * The HTTP side of a sidecar client: one pooled keep-alive undici Agent on the Unix socket, and the
 * mapping of answers back to the library's errors. A connection that fails, a timeout, a 5xx: a
 * RemoteError naming the socket (so a Levels skips a sidecar that is down and smartCache computes);
 * a 4xx problem+json: the typed error its `code` names, with the sidecar's `detail` as message.
 */
export class SidecarTransport {
  readonly #socket: string;
  readonly #options: SidecarTransportOptions;
  readonly #agent = new Lazy<Agent>();
  #closed = false;
  /** Holders of this transport (a location and its memo index share one pool). */
  #users = 1;

  constructor(socket: string, options: SidecarTransportOptions = {}) {
    this.#socket = socket;
    this.#options = options;
  }

  /** `sidecar <socket>`, as every RemoteError names it. */
  get where(): string {
    return `sidecar ${this.#socket}`;
  }

  async #dispatcher(): Promise<Agent> {
    if (this.#closed) throw new RemoteError(this.where, 'a request', new Error('the client is closed'));
    return this.#agent.get(async () => {
      const { Agent: A } = await import('undici');
      const timeout = this.#options.requestTimeoutMs ?? 60_000;
      return new A({
        connect: { socketPath: this.#socket, timeout: Math.min(timeout, 10_000) },
        connections: this.#options.connections ?? 16,
        keepAliveTimeout: this.#options.keepAliveTimeoutMs ?? 10_000,
        headersTimeout: timeout,
        bodyTimeout: timeout,
      });
    });
  }

  /**
   * Sends a request and hands back the answer, whatever its status; only a transport failure
   * throws here (RemoteError, or AbortError when `signal` fired).
   */
  async send(method: Method, path: string, options: SendOptions = {}): Promise<Dispatcher.ResponseData> {
    if (options.signal?.aborted) throw new AbortError(options.signal.reason);
    try {
      const agent = await this.#dispatcher();
      return await agent.request({
        origin: ORIGIN,
        path,
        method,
        headers: options.headers,
        body: options.body ?? null,
        signal: options.signal,
        ...(options.noHeadersTimeout ? { headersTimeout: 0 } : {}),
      });
    } catch (e) {
      throw remoteError(this.where, `${method} ${path}`, e, options.signal);
    }
  }

  /** The answer's JSON, validated by `schema`; a body that does not fit is the sidecar's fault. */
  async json<S extends z.ZodType>(
    res: Dispatcher.ResponseData,
    schema: S,
    action: string,
    signal?: AbortSignal,
  ): Promise<z.infer<S>> {
    let raw: unknown;
    try {
      raw = await res.body.json();
    } catch (e) {
      throw remoteError(this.where, action, e, signal);
    }
    const parsed = schema.safeParse(raw);
    if (!parsed.success)
      throw new RemoteError(
        this.where,
        action,
        new Error(`an answer (HTTP ${res.statusCode}) that is not the API's: ${parsed.error.message}`),
      );
    return parsed.data;
  }

  /**
   * The error an unexpected answer stands for: the body is read (and bounded), the problem's code
   * mapped. `key` fills in the typed errors that carry one.
   */
  async failure(
    res: Dispatcher.ResponseData,
    action: string,
    context: { key?: string; expected?: string } = {},
  ): Promise<Error> {
    let text = '';
    try {
      text = await readBounded(res.body, 64 << 10);
    } catch (e) {
      return remoteError(this.where, action, e);
    }
    let body: ProblemBody | undefined;
    try {
      const parsed = problem.safeParse(JSON.parse(text));
      if (parsed.success) body = parsed.data;
    } catch {
      // not JSON: described below by its status
    }
    // A HEAD answer has no body: its problem's code comes in a header.
    const code = res.headers[HEADERS.code];
    if (!body && typeof code === 'string' && /^TARN_[A-Z_]{1,40}$/.test(code))
      body = {
        type: `https://tarn.dev/errors/${code}`,
        title: code,
        status: res.statusCode,
        code,
        detail: `the sidecar answered ${res.statusCode} ${code}`,
      };
    if (!body) {
      return new RemoteError(
        this.where,
        action,
        new Error(`HTTP ${res.statusCode}${text ? `: ${text.slice(0, 200)}` : ''}`),
      );
    }
    return errorOfProblem(body, { ...context, where: this.where, action });
  }

  /** One more holder: the pool closes when the last one closes it. */
  share(): this {
    this.#users++;
    return this;
  }

  /**
   * One holder is done; the last one closes the pooled connections (requests after that fail as
   * RemoteErrors). Each holder calls this once.
   */
  async close(): Promise<void> {
    if (--this.#users > 0) return;
    this.#closed = true;
    const agent = this.#agent.take();
    if (agent) await (await agent.catch(() => undefined))?.close();
  }
}

/** Reads at most `limit` bytes of a body as text, then discards the rest. */
async function readBounded(body: Readable, limit: number): Promise<string> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    const b = chunk as Buffer;
    if (size < limit) parts.push(b.subarray(0, limit - size));
    size += b.byteLength;
    if (size >= limit) {
      body.destroy();
      break;
    }
  }
  return Buffer.concat(parts).toString('utf8');
}

/** The codes carried by a ServiceError (the sidecar's own refusals). */
const SERVICE: ReadonlySet<string> = new Set<string>(SERVICE_CODES);

/** Sets the sidecar's own wording on an error whose class words its message from its fields. */
function worded<E extends Error>(error: E, detail: string): E {
  error.message = detail;
  return error;
}

/**
 * The library error a problem+json stands for, worded by the sidecar (`detail`). What the caller
 * can act on is typed by its code (a bad key, a mismatch, a collision, a forbidden delete, no local
 * file, an unsupported route); a failure of the sidecar or of the servers behind it (a 5xx other
 * than those, a busy or closing sidecar) is a RemoteError whose cause is the typed error, so that
 * combinators pass over a sidecar that cannot serve and smartCache computes instead.
 */
export function errorOfProblem(
  p: ProblemBody,
  context: { key?: string; expected?: string; where: string; action: string },
): Error {
  const key = context.key ?? '';
  const detail = p.detail;
  let typed: Error;
  switch (p.code) {
    case 'TARN_INVALID_KEY':
      typed = worded(new InvalidKeyError(key, detail), detail);
      break;
    case 'TARN_KEY_MISMATCH': {
      const actual = /hashes to ([0-9a-f]+)/.exec(detail)?.[1] ?? 'another key';
      typed = worded(new KeyMismatchError(context.expected ?? key, actual), detail);
      break;
    }
    case 'TARN_COLLISION':
      typed = worded(new CollisionError(key, detail), detail);
      break;
    case 'TARN_NOT_FOUND':
      typed = worded(new NotFoundError(key), detail);
      break;
    case 'TARN_NO_LOCAL_COPY':
      typed = worded(new NoLocalCopyError(key, detail), detail);
      break;
    case 'TARN_FORBIDDEN':
      typed = new ForbiddenError(detail);
      break;
    case 'TARN_UNSUPPORTED':
      typed = new UnsupportedError(detail);
      break;
    case 'TARN_LEASE_LOST':
      typed = new LeaseLostError(detail);
      break;
    case 'TARN_SOURCE':
      typed = new SourceError(detail);
      break;
    case 'TARN_USAGE':
      typed = new UsageError(detail);
      break;
    case 'TARN_ABORTED':
      typed = worded(new AbortError(new Error(detail)), detail);
      break;
    case 'TARN_CORRUPTION':
      typed = worded(new StorageCorruption(key, undefined, context.where), detail);
      break;
    case 'TARN_PARTIAL_DELETE':
      typed = worded(new PartialDeleteError(key, [], [{ where: context.where, message: detail }]), detail);
      break;
    case 'TARN_REFUSED':
      typed = worded(new RefusedError(detail), detail);
      break;
    case 'TARN_CONFIG':
      typed = new ConfigError(detail);
      break;
    case 'TARN_IO':
      typed = new IoError(detail);
      break;
    case 'TARN_MEMO':
      typed = new MemoError(detail);
      break;
    case 'TARN_CACHE_KEY':
      typed = worded(new CacheKeyError('', detail), detail);
      break;
    case 'TARN_READ_ERROR':
      typed = new ReadError(detail);
      break;
    case 'TARN_WRITE_ERROR':
      typed = new WriteError(detail);
      break;
    case 'TARN_ERROR':
      typed = new TarnError(detail);
      break;
    case 'TARN_SOCKET_IN_USE':
      typed = worded(new SocketInUseError(''), detail);
      break;
    // The servers behind the sidecar failed: that is what RemoteError says, naming the sidecar.
    case 'TARN_REMOTE':
      return new RemoteError(context.where, context.action, new Error(detail));
    default:
      typed = SERVICE.has(p.code)
        ? new ServiceError(p.code as ServiceCode, detail)
        : new SidecarError(p.code, detail);
  }
  // Typed answers the caller acts on; the rest is the sidecar (or what is behind it) failing.
  const typedAnswer =
    p.status < 500
      ? !(p.code === 'TARN_BUSY' || p.code === 'TARN_UNAVAILABLE' || p.code === 'TARN_TIMEOUT')
      : p.code === 'TARN_UNSUPPORTED' || p.code === 'TARN_CORRUPTION' || p.code === 'TARN_PARTIAL_DELETE';
  return typedAnswer ? typed : new RemoteError(context.where, context.action, typed);
}

/** An error the sidecar reported with a code this client does not know (a newer sidecar). */
export class SidecarError extends TarnError {
  override readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}
