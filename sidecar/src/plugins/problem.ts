import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { ERRORS, type ErrorCode, ServiceError, statusOf } from '@tarnjs/tarn';
import type { ProblemBody } from '@tarnjs/tarn/sidecar-api';
import { HEADERS } from '@tarnjs/tarn/sidecar-api';
import type { FastifyBaseLogger, FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';

export const PROBLEM_TYPE = 'application/problem+json';
const TYPE_BASE = 'https://tarn.dev/errors/';

const EXTRA_HEADERS = Symbol('tarn.problemHeaders');

/** Adds response headers to an error's problem (`Retry-After` on 503, `Content-Range` on 416). */
export function withHeaders<E extends Error>(error: E, headers: Record<string, string>): E {
  (error as E & { [EXTRA_HEADERS]?: Record<string, string> })[EXTRA_HEADERS] = headers;
  return error;
}

/** Headers a route may have set before it failed; they describe a body the problem replaces. */
const ROUTE_HEADERS = [
  'etag',
  'cache-control',
  'accept-ranges',
  'content-range',
  'content-length',
  'content-type',
  'x-tarn-key',
  'last-modified',
];

/** The title of a code: the same for every problem of that type (RFC 9457), e.g. `Key mismatch`. */
export function titleOf(code: ErrorCode): string {
  const words = code
    .replace(/^TARN_/, '')
    .toLowerCase()
    .replace(/_/g, ' ');
  return words.charAt(0).toUpperCase() + words.slice(1);
}

/**
 * fastify's own refusals (a malformed JSON body, an unsupported content type, a body over the
 * JSON limit, a request while closing) as our codes: they carry a 4xx/5xx `statusCode` and an
 * `FST_` code that no client knows.
 */
function fastifyCode(e: FastifyError): ErrorCode | undefined {
  if (typeof e.code !== 'string' || !e.code.startsWith('FST_')) {
    // A JSON body that does not parse is a SyntaxError with a 400 status.
    return e instanceof SyntaxError && e.statusCode === 400 ? 'TARN_BAD_REQUEST' : undefined;
  }
  switch (e.statusCode) {
    case 404:
      return 'TARN_NO_ROUTE';
    case 408:
      return 'TARN_TIMEOUT';
    case 413:
      return 'TARN_TOO_LARGE';
    case 503:
      return 'TARN_UNAVAILABLE';
    default:
      return e.statusCode !== undefined && e.statusCode >= 400 && e.statusCode < 500
        ? 'TARN_BAD_REQUEST'
        : undefined;
  }
}

export interface Problem {
  readonly status: number;
  readonly body: ProblemBody;
  /** False for a bug: logged with its stack, told to the client as "internal error" only. */
  readonly expected: boolean;
}

/** The problem document for anything thrown while serving `requestId`. */
export function problemOf(e: unknown, requestId: string): Problem {
  const fst = e instanceof Error ? fastifyCode(e as FastifyError) : undefined;
  const { code, http, expected } = fst ? { code: fst, http: ERRORS[fst].http, expected: true } : statusOf(e);
  const detail = expected ? (e as Error).message : `internal error (request ${requestId})`;
  return {
    status: http,
    expected,
    body: { type: TYPE_BASE + code, title: titleOf(code), status: http, detail, code, instance: requestId },
  };
}

/** Sends a problem: the request's own headers are dropped, the problem's content type set. */
export function sendProblem(
  reply: FastifyReply,
  problem: Problem,
  extra?: Record<string, string>,
): FastifyReply {
  for (const h of ROUTE_HEADERS) reply.removeHeader(h);
  if (extra) reply.headers(extra);
  // The code also as a header: a HEAD answer carries no body, and a client still needs the code.
  reply.header(HEADERS.code, problem.body.code);
  // A body the handler did not read (a refused upload) would be drained to keep the connection;
  // closing it is cheaper than reading gigabytes nobody wants.
  if (!reply.request.raw.complete) {
    reply.header('connection', 'close');
    lingerOnClose(reply.request.raw.socket);
  }
  return reply.code(problem.status).type(PROBLEM_TYPE).send(JSON.stringify(problem.body));
}

/** How long a closing connection still reads (and drops) what its client sends. */
const LINGER_MS = 2_000;

/**
 * Closes the connection once the answer is out, lingering as nginx does: Node's server closes a
 * `Connection: close` exchange with `destroySoon()`, which closes the socket right after the answer;
 * with unread request bytes still arriving, the kernel then answers them with a reset, and a reset
 * can destroy the answer in the client's buffers before the client reads it (a 413 seen as a bare
 * ECONNRESET). Instead: half-close (the answer and a FIN go out), keep reading and dropping what the
 * client still sends, and destroy once the client closes its side or after LINGER_MS.
 */
function lingerOnClose(socket: Socket | null): void {
  if (!socket) return;
  const s = socket as Socket & { destroySoon?: () => void };
  s.destroySoon = () => {
    s.end();
    s.resume();
    const timer = setTimeout(() => s.destroy(), LINGER_MS);
    timer.unref();
    s.once('close', () => clearTimeout(timer));
  };
}

/**
 * fastify's `frameworkErrors`: a URL it cannot decode, a parameter over the router's length. They
 * come before routing, so before any hook: the request id header is set here.
 */
export function frameworkError(e: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  const problem = problemOf(e, request.id);
  log(request, e, problem);
  reply.header('x-request-id', request.id);
  sendProblem(reply, problem);
}

function log(request: FastifyRequest, e: unknown, problem: Problem): void {
  const { code, status } = problem.body;
  if (!problem.expected) request.log.error({ err: e, code, status }, 'request failed: internal error');
  else if (status === 499) request.log.info({ code, status }, 'request aborted: the client went away');
  else if (status >= 500) request.log.warn({ code, status, detail: problem.body.detail }, 'request failed');
  else request.log.info({ code, status, detail: problem.body.detail }, 'request refused');
}

/**
 * One error handler for every route: anything thrown becomes RFC 9457 problem+json with the
 * library's stable code (errors.ts's table gives the status). Unknown routes are TARN_NO_ROUTE.
 */
export const problems = fp(async (app: FastifyInstance) => {
  app.setErrorHandler((e: unknown, request, reply) => {
    const problem = problemOf(e, request.id);
    log(request, e, problem);
    if (problem.status === 499 || reply.raw.destroyed) {
      // Nobody is left to read it (the client went away): cut what is left of the exchange.
      reply.hijack();
      reply.raw.destroy();
      return;
    }
    const extra = (e as { [EXTRA_HEADERS]?: Record<string, string> } | null)?.[EXTRA_HEADERS];
    return sendProblem(reply, problem, extra);
  });
  app.setNotFoundHandler((request, reply) => {
    const e = new ServiceError(
      'TARN_NO_ROUTE',
      `no route ${request.method} ${request.url.split('?')[0]?.slice(0, 300)}`,
    );
    const problem = problemOf(e, request.id);
    log(request, e, problem);
    return sendProblem(reply, problem);
  });
});

/** A client error of Node's HTTP parser or timers, as our code and what to tell the client. */
function clientProblemOf(e: NodeJS.ErrnoException): { code: ErrorCode; detail: string } {
  if (e.code === 'ERR_HTTP_REQUEST_TIMEOUT')
    return {
      code: 'TARN_TIMEOUT',
      detail:
        'the request did not arrive in time (its headers within serve.headersTimeoutMs, all of it within serve.requestTimeoutMs); nothing was stored',
    };
  if (e.code === 'HPE_HEADER_OVERFLOW')
    return { code: 'TARN_BAD_REQUEST', detail: 'the request headers are over the server’s limit' };
  return { code: 'TARN_BAD_REQUEST', detail: `not an HTTP/1.1 request this server can parse (${e.code})` };
}

/**
 * fastify's `clientErrorHandler` (Node's `clientError`): what Node refuses before any route sees a
 * request, a request timeout above all, answered as problem+json like every other refusal
 * (fastify's default writes its own JSON shape). Node's own rule is kept: an answer is written only
 * when no response has started on the connection, which is then closed.
 */
export function clientError(
  this: { log: FastifyBaseLogger },
  e: NodeJS.ErrnoException,
  socket: Socket,
): void {
  if (e.code === 'ECONNRESET' || socket.destroyed) return;
  const { code, detail } = clientProblemOf(e);
  this.log.info({ code, status: ERRORS[code].http, detail }, 'request refused');
  // Node's rule: an answer only where no response has started on the connection.
  const inFlight = responseOn(socket);
  if (!inFlight?.headersSent) writeProblem(socket, code, detail);
  socket.destroy(e);
}

/** Node's internal link from a socket to the response being written on it (none between requests). */
function responseOn(socket: Socket): ServerResponse | undefined {
  return (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage ?? undefined;
}

/** A problem written straight to the connection, which is closed after it. */
function writeProblem(socket: Socket, code: ErrorCode, detail: string): void {
  if (!socket.writable) return;
  const status = ERRORS[code].http;
  const body = JSON.stringify({ type: TYPE_BASE + code, title: titleOf(code), status, detail, code });
  const reason = code === 'TARN_TIMEOUT' ? 'Request Timeout' : 'Bad Request';
  socket.write(
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: ${PROBLEM_TYPE}\r\n${HEADERS.code}: ${code}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

/**
 * Cuts a connection that waited on its client for `serve.idleTimeoutMs` (app.ts's `cutIdle` decides
 * which). Node would destroy it silently; a client whose request is still being received (an upload
 * that stalled) is told why first, with a 408 problem. A response already started (a client that stopped
 * reading), or a connection idle between requests, is closed without a word, as Node does: there
 * is no answer to put anything in.
 */
export function idleTimeout(log: FastifyBaseLogger, socket: Socket): void {
  const inFlight = responseOn(socket);
  if (inFlight && !inFlight.headersSent) {
    const detail = 'no byte of the request arrived for serve.idleTimeoutMs; nothing was stored';
    log.info({ code: 'TARN_TIMEOUT', status: 408, detail }, 'request refused');
    writeProblem(socket, 'TARN_TIMEOUT', detail);
  }
  socket.destroy();
}
