import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { ServiceError } from '@tarnjs/tarn';
import { HEADERS, type ReadinessBody } from '@tarnjs/tarn/sidecar-api';
import Fastify, {
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyPluginAsync,
  type FastifyRequest,
  LogController,
} from 'fastify';
import fp from 'fastify-plugin';
import { continueOnRead } from './body.js';
import { CountedRequest, CountedResponse } from './counted.js';
import { lazyChildLogger } from './log.js';
import { clientError, frameworkError, idleTimeout, problems, withHeaders } from './plugins/problem.js';
import { treePlugin } from './plugins/tree.js';
import { validation } from './plugins/validation.js';
import { blobRoutes } from './routes/blobs.js';
import { healthRoutes } from './routes/health.js';
import { ingestRoutes } from './routes/ingest.js';
import { keyRoutes } from './routes/keys.js';
import { LeaseTable, leaseRoutes } from './routes/leases.js';
import { memoRoutes } from './routes/memo.js';
import type { ServeSettings } from './settings.js';
import { UploadSlots } from './slots.js';
import type { Trees } from './trees.js';

/** What the app is built from; the process (serve.ts) owns the trees, the socket and the signals. */
export interface AppOptions {
  trees: Trees;
  settings: ServeSettings;
  /** pino logger (fastify's own when absent: silent). */
  logger?: FastifyBaseLogger;
  /** What `/readyz` answers: the process knows whether the last reload worked. */
  readiness: () => ReadinessBody;
  /**
   * A plugin registered before the routes, unencapsulated so that its hooks see every route
   * (the process's metrics).
   */
  instrument?: FastifyPluginAsync;
}

/** JSON bodies (fetch's key list, lease requests) are small; values come as raw streams, counted apart. */
export const JSON_BODY_LIMIT = 2 << 20;

/** A client's own request id is kept when it is this tame (it goes into logs and headers). */
const CLIENT_ID = /^[A-Za-z0-9._-]{1,64}$/;

function requestIdOf(request: IncomingMessage): string {
  const given = request.headers[HEADERS.requestId];
  return typeof given === 'string' && CLIENT_ID.test(given) ? given : randomUUID();
}

function headersTimeoutOf(settings: ServeSettings): number {
  return settings.requestTimeoutMs > 0
    ? Math.min(settings.headersTimeoutMs, settings.requestTimeoutMs)
    : settings.headersTimeoutMs;
}

/**
 * How often Node looks for connections past their headers or request timeout. Its default is 30 s,
 * whatever the timeouts: a slowloris client given 1 s for its headers would hold its connection
 * for up to 31 s. A quarter of the shortest timeout (at most 1 s, at least 50 ms) keeps a cut
 * within 25 % of its time; each check walks the open connections, which is cheap next to that.
 */
function checkingIntervalOf(settings: ServeSettings): number {
  const timeouts = [headersTimeoutOf(settings), settings.requestTimeoutMs].filter((t) => t > 0);
  if (timeouts.length === 0) return 30_000;
  return Math.max(50, Math.min(1000, Math.floor(Math.min(...timeouts) / 4)));
}

/** Builds the fastify instance: registers plugins and routes, nothing else. */
export async function buildApp(options: AppOptions): Promise<FastifyInstance> {
  const { settings, trees } = options;
  const app = Fastify({
    ...(options.logger
      ? {
          loggerInstance: options.logger,
          // A request's child logger is made when it first logs (most never do).
          childLoggerFactory: (logger, bindings, childOptions) =>
            lazyChildLogger(logger, bindings, childOptions),
        }
      : { logger: false }),
    // Bounded time for everything a client sends: a stalled one cannot hold a connection forever.
    // The idle timeout is Node's socket inactivity timer; `cutIdle` below decides what it cuts.
    requestTimeout: settings.requestTimeoutMs,
    connectionTimeout: settings.idleTimeoutMs,
    keepAliveTimeout: settings.idleTimeoutMs,
    // Node refuses a headers timeout above a (non-zero) request timeout.
    http: {
      headersTimeout: headersTimeoutOf(settings),
      connectionsCheckingInterval: checkingIntervalOf(settings),
      // Count body bytes for the metrics as they pass (counted.ts).
      IncomingMessage: CountedRequest,
      ServerResponse: CountedResponse,
    },
    // While closing, new requests get our own problem (below), not fastify's plain JSON 503.
    return503OnClosing: false,
    bodyLimit: JSON_BODY_LIMIT,
    genReqId: requestIdOf,
    requestIdHeader: false,
    // fastify's request lines log the URL and nothing else; the problem handler logs each refusal.
    // Bodies and headers (an authorization) never reach a log line.
    logController: new LogController({ disableRequestLogging: true }),
    // HEAD /v1/blobs/{key} is a route of its own (no copy-on-read), not GET without a body.
    exposeHeadRoutes: false,
    // Keys up to 128 hex digits, and longer ones reach the schema (a 400 naming the field, not a 404).
    routerOptions: { maxParamLength: 1024 },
    frameworkErrors: frameworkError,
    clientErrorHandler: clientError,
  });

  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });
  const inFlight = cutIdle(app);
  // `Expect: 100-continue`: a PUT (a raw body, read by the route) is told to go on only when its
  // route reads the body, so a refusal by its headers costs the client no upload. Every other body
  // is parsed by fastify before the route runs: go on at once.
  app.server.on('checkContinue', (request: IncomingMessage, response: ServerResponse) => {
    if (request.method === 'PUT') continueOnRead(request, response);
    else response.writeContinue();
    app.server.emit('request', request, response);
  });
  // Hooks with a callback, not async: a promise per hook per request is measurable at 1 KiB GETs.
  app.addHook('onRequest', (request, reply, done) => {
    reply.header(HEADERS.requestId, request.id);
    inFlight.set(request.raw.socket, request);
    if (!closing) return done();
    done(
      withHeaders(
        new ServiceError('TARN_UNAVAILABLE', 'the sidecar is shutting down; retry on its successor'),
        { 'retry-after': '1', connection: 'close' },
      ),
    );
  });
  app.addHook('onResponse', (request, _reply, done) => {
    if (inFlight.get(request.raw.socket) === request) inFlight.delete(request.raw.socket);
    done();
  });
  await app.register(problems);
  await app.register(validation);
  await app.register(treePlugin, { trees });
  if (options.instrument) await app.register(fp(options.instrument));

  const leases = new LeaseTable(trees);
  app.addHook('onClose', async () => leases.close());

  await app.register(healthRoutes, { readiness: options.readiness });
  const slots = new UploadSlots(settings.maxUploads);
  await app.register(blobRoutes, { settings, slots });
  await app.register(ingestRoutes, { roots: settings.ingestRoots, slots });
  await app.register(keyRoutes);
  await app.register(memoRoutes);
  await app.register(leaseRoutes, { leases });
  return app;
}

/**
 * The idle timeout cuts a connection only while it waits on its client: between requests, while
 * a request body stalls, or while the client does not read the answer (the response cannot drain).
 * Node's own rule (destroy any socket that moved no byte for that long) would also cut a request
 * the server is still working on (a fetch of many keys from S3, a verified read, a slow level),
 * which its levels' own timeouts bound instead. A server 'timeout' listener replaces Node's rule.
 */
function cutIdle(app: FastifyInstance): WeakMap<Socket, FastifyRequest> {
  const inFlight = new WeakMap<Socket, FastifyRequest>();
  app.server.on('timeout', (socket: Socket) => {
    const request = inFlight.get(socket);
    const waitingOnClient =
      request === undefined || !request.raw.complete || request.raw.socket.writableNeedDrain;
    // A stalled upload is told why (a 408 problem) before it is cut.
    if (waitingOnClient) idleTimeout(app.log, socket);
  });
  return inFlight;
}
