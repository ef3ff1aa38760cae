import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { HEADERS, type ReadinessBody } from '@tarnjs/tarn/sidecar-api';
import Fastify, {
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyPluginAsync,
  LogController,
} from 'fastify';
import fp from 'fastify-plugin';
import { problems } from './plugins/problem.js';
import { treePlugin } from './plugins/tree.js';
import { validation } from './plugins/validation.js';
import { blobRoutes } from './routes/blobs.js';
import { healthRoutes } from './routes/health.js';
import { keyRoutes } from './routes/keys.js';
import { LeaseTable, leaseRoutes } from './routes/leases.js';
import { memoRoutes } from './routes/memo.js';
import type { ServeSettings } from './settings.js';
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

/** Builds the fastify instance: registers plugins and routes, nothing else. */
export async function buildApp(options: AppOptions): Promise<FastifyInstance> {
  const { settings, trees } = options;
  const app = Fastify({
    ...(options.logger ? { loggerInstance: options.logger } : { logger: false }),
    // Bounded time for everything a client sends: a stalled one cannot hold a connection forever.
    requestTimeout: settings.requestTimeoutMs,
    connectionTimeout: settings.idleTimeoutMs,
    keepAliveTimeout: settings.idleTimeoutMs,
    // Node refuses a headers timeout above a (non-zero) request timeout.
    http: {
      headersTimeout:
        settings.requestTimeoutMs > 0
          ? Math.min(settings.headersTimeoutMs, settings.requestTimeoutMs)
          : settings.headersTimeoutMs,
    },
    return503OnClosing: true,
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
  });

  app.addHook('onRequest', async (request, reply) => {
    reply.header(HEADERS.requestId, request.id);
  });
  await app.register(problems);
  await app.register(validation);
  await app.register(treePlugin, { trees });
  if (options.instrument) await app.register(fp(options.instrument));

  const leases = new LeaseTable(trees);
  app.addHook('onClose', async () => leases.close());

  await app.register(healthRoutes, { readiness: options.readiness });
  await app.register(blobRoutes, { settings });
  await app.register(keyRoutes);
  await app.register(memoRoutes);
  await app.register(leaseRoutes, { leases });
  return app;
}
