import type { RouteSpec } from '@tarnjs/tarn/sidecar-api';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { type Handler, type RouteInput, schemaOf } from '../plugins/validation.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The route's id in `ROUTES` (`getBlob`, …): a stable label for metrics and logs. */
    id?: string;
  }
}

/**
 * Registers a route of `ROUTES` exactly as the contract states it (method, URL, zod schemas). The
 * handler is marked as running while it runs, so the request's tree outlives it (tree.ts).
 */
export function route<S extends RouteSpec>(app: FastifyInstance, spec: S, handler: Handler<S>): void {
  app.route<RouteInput<S>>({
    method: spec.method,
    url: spec.url,
    schema: schemaOf(spec),
    config: { id: spec.id },
    handler: async (request: FastifyRequest<RouteInput<S>>, reply: FastifyReply) => {
      request.handling(true);
      try {
        return await handler(request, reply);
      } finally {
        request.handling(false);
      }
    },
  });
}
