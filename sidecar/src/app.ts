import type { ReadinessBody } from '@tarnjs/tarn/sidecar-api';
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
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
}

/** Builds the fastify instance: registers plugins and routes, nothing else. */
export async function buildApp(_options: AppOptions): Promise<FastifyInstance> {
  throw new Error('TODO(routes): buildApp');
}
