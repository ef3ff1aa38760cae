import { type ReadinessBody, ROUTES } from '@tarnjs/tarn/sidecar-api';
import type { FastifyInstance } from 'fastify';
import { openApiDocument } from '../openapi.js';
import { route } from './route.js';

export async function healthRoutes(
  app: FastifyInstance,
  options: { readiness: () => ReadinessBody },
): Promise<void> {
  route(app, ROUTES.healthz, async (_request, reply) => reply.send({ status: 'ok' }));
  route(app, ROUTES.readyz, async (_request, reply) => {
    const body = options.readiness();
    return reply.code(body.ready ? 200 : 503).send(body);
  });
  // Built once: the document is a pure function of ROUTES.
  const document = JSON.stringify(openApiDocument());
  route(app, ROUTES.openapi, async (_request, reply) => reply.type('application/json').send(document));
}
