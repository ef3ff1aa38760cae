import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Fanout, IoError, isSystemError, Levels, type Location, walkTree } from '@tarnjs/tarn';
import { type ReadinessBody, ROUTES } from '@tarnjs/tarn/sidecar-api';
import type {
  FastifyBaseLogger,
  FastifyInstance,
  FastifyPluginAsync,
  FastifyReply,
  FastifyRequest,
} from 'fastify';
import fp from 'fastify-plugin';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import { CountedRequest, CountedResponse } from '../counted.js';
import type { Trees } from '../trees.js';

export interface MetricsOptions {
  trees: Trees;
  /** The process's readiness (ready, generation), read at scrape time. */
  readiness: () => ReadinessBody;
  /** Where `GET /metrics` is served over TCP; undefined: collected, served nowhere. */
  listen: { port: number; host: string } | undefined;
  logger?: FastifyBaseLogger;
}

/** `METHOD url` of every route of the API → its id (the route label); HEAD of a GET route is the GET's. */
const ROUTE_IDS = new Map<string, string>(
  Object.values(ROUTES).map((r): [string, string] => [`${r.method} ${r.url}`, r.id]),
);

function routeIdOf(method: string | undefined, url: string | undefined): string {
  if (url === undefined) return 'none';
  return (
    ROUTE_IDS.get(`${method} ${url}`) ??
    (method === 'HEAD' ? ROUTE_IDS.get(`GET ${url}`) : undefined) ??
    'other'
  );
}

/** A label for a combinator: its place in the tree (`/` the root, `/level1/member0` below it). */
function placesOf(root: Location): Array<{ place: string; location: Location }> {
  const places = new Map<object, string>();
  const out: Array<{ place: string; location: Location }> = [];
  for (const entry of walkTree(root)) {
    const parent = entry.parent ? (places.get(entry.parent) ?? '') : '';
    const use = entry.use;
    const place = use ? `${parent}/${use.as}${'index' in use ? use.index : ''}` : '/';
    places.set(entry, place === '/' ? '' : place);
    if (entry.first) out.push({ place, location: entry.location });
  }
  return out;
}

/**
 * The sidecar's Prometheus metrics, in a registry of their own (never prom-client's global one,
 * which another copy of prom-client in the process could share): requests, latency and bytes by
 * route; hits, misses, copies and faults per level, read from the current tree's combinators at
 * scrape time; memo hits and misses; config generation, reload failures and readiness; and the
 * process's default metrics.
 */
export class Metrics {
  readonly registry = new Registry();
  readonly reloadFailures: Counter;
  readonly #options: MetricsOptions;
  #server: Server | undefined;

  constructor(options: MetricsOptions) {
    this.#options = options;
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    this.reloadFailures = new Counter({
      name: 'tarn_sidecar_config_reload_failures_total',
      help: 'Config reloads that failed (the file did not parse or its tree did not build); the old tree was kept',
      registers,
    });
    const { trees, readiness } = options;
    new Gauge({
      name: 'tarn_sidecar_ready',
      help: '1 when /readyz answers 200 (a tree is built and the last reload succeeded), else 0',
      registers,
      collect() {
        this.set(readiness().ready ? 1 : 0);
      },
    });
    new Gauge({
      name: 'tarn_sidecar_config_generation',
      help: 'How many configs were loaded: 1 at start, +1 per successful reload',
      registers,
      collect() {
        this.set(trees.generation);
      },
    });
    // The current tree's hot cache (a reload starts a new one, whose counters start at 0).
    new Counter({
      name: 'tarn_sidecar_hot_cache_lookups_total',
      help: 'GETs and HEADs looked up in the hot cache of small values: hit (answered from memory) or miss',
      labelNames: ['result'],
      registers,
      collect() {
        this.reset();
        const stats = trees.current()?.hot?.stats;
        this.inc({ result: 'hit' }, stats?.hits ?? 0);
        this.inc({ result: 'miss' }, stats?.misses ?? 0);
      },
    });
    new Counter({
      name: 'tarn_sidecar_hot_cache_evictions_total',
      help: 'Values dropped from the hot cache to make room (those not read lately first)',
      registers,
      collect() {
        this.reset();
        this.inc(trees.current()?.hot?.stats.evictions ?? 0);
      },
    });
    new Gauge({
      name: 'tarn_sidecar_hot_cache_bytes',
      help: 'Memory held by the hot cache: its values and a fixed overhead per entry',
      registers,
      collect() {
        this.set(trees.current()?.hot?.bytes ?? 0);
      },
    });
    // Counters of the combinators, read when scraped. A reload builds new combinators whose
    // counters start at 0: Prometheus's rate() takes such a reset in its stride.
    const stat = (
      name: string,
      help: string,
      labelNames: string[],
      read: (c: Location) => Record<string, number> | undefined,
    ) =>
      new Counter({
        name,
        help,
        labelNames,
        registers,
        collect() {
          this.reset();
          const root = trees.current()?.storage.location;
          if (!root) return;
          for (const { place, location } of placesOf(root)) {
            const counts = read(location);
            if (!counts) continue;
            for (const [member, n] of Object.entries(counts)) {
              this.inc(
                labelNames.length === 2
                  ? { combinator: place, [labelNames[1] as string]: member }
                  : { combinator: place },
                n,
              );
            }
          }
        },
      });
    stat(
      'tarn_sidecar_level_hits_total',
      'Reads served by each level of a Levels combinator',
      ['combinator', 'level'],
      (c) => (c instanceof Levels ? c.stats.hits : undefined),
    );
    stat(
      'tarn_sidecar_level_copies_total',
      'Copies made into each level of a Levels combinator by copy-on-read',
      ['combinator', 'level'],
      (c) => (c instanceof Levels ? c.stats.copies : undefined),
    );
    stat(
      'tarn_sidecar_level_faults_total',
      'Operations of each level of a Levels combinator that failed or timed out (and were skipped)',
      ['combinator', 'level'],
      (c) => (c instanceof Levels ? c.stats.faults : undefined),
    );
    stat(
      'tarn_sidecar_level_misses_total',
      'Reads a Levels combinator found in none of its levels',
      ['combinator'],
      (c) => (c instanceof Levels ? { '': c.stats.misses } : undefined),
    );
    stat(
      'tarn_sidecar_fanout_faults_total',
      'Operations of each member of a Fanout that failed (and were passed over)',
      ['combinator', 'member'],
      (c) => (c instanceof Fanout ? c.stats.faults : undefined),
    );
  }

  /** The fastify plugin that counts requests (not encapsulated: its hooks see every route) and serves /metrics. */
  get plugin(): FastifyPluginAsync {
    return fp(async (app: FastifyInstance) => this.#register(app), { name: 'tarn-metrics', fastify: '5.x' });
  }

  /** Where /metrics listens, once the app is ready. */
  get address(): AddressInfo | undefined {
    return (this.#server?.address() as AddressInfo | null) ?? undefined;
  }

  async #register(app: FastifyInstance): Promise<void> {
    const registers = [this.registry];
    const requests = new Counter({
      name: 'tarn_sidecar_requests_total',
      help: 'Requests answered, by route id (none: no route matched) and HTTP status',
      labelNames: ['route', 'status'],
      registers,
    });
    const duration = new Histogram({
      name: 'tarn_sidecar_request_duration_seconds',
      help: 'From the request headers to the last byte of the answer, by route id',
      labelNames: ['route'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
      registers,
    });
    const bytesIn = new Counter({
      name: 'tarn_sidecar_request_bytes_total',
      help: 'Bytes of request bodies received, by route id',
      labelNames: ['route'],
      registers,
    });
    const bytesOut = new Counter({
      name: 'tarn_sidecar_response_bytes_total',
      help: 'Bytes of response bodies sent, by route id',
      labelNames: ['route'],
      registers,
    });
    const memo = new Counter({
      name: 'tarn_sidecar_memo_lookups_total',
      help: 'Memo index lookups (GET /v1/memo/{callKey}): hit (200) or miss (404)',
      labelNames: ['result'],
      registers,
    });
    memo.inc({ result: 'hit' }, 0);
    memo.inc({ result: 'miss' }, 0);

    // Counted when the response closes, not on fastify's onResponse: that runs on the response's
    // 'finish', which a response whose client went away (or closed as the last bytes left) never
    // emits; 'close' comes for every response, once.
    // Each series' child is looked up once: prom-client hashes the labels object on every
    // `inc`/`observe` given one, which was a measurable part of a 1 KiB GET.
    const byRoute = new Map<
      string,
      {
        duration: ReturnType<typeof duration.labels>;
        bytesIn: ReturnType<typeof bytesIn.labels>;
        bytesOut: ReturnType<typeof bytesOut.labels>;
      }
    >();
    const byStatus = new Map<string, ReturnType<typeof requests.labels>>();
    const seriesOf = (route: string) => {
      let series = byRoute.get(route);
      if (!series) {
        series = {
          duration: duration.labels(route),
          bytesIn: bytesIn.labels(route),
          bytesOut: bytesOut.labels(route),
        };
        byRoute.set(route, series);
      }
      return series;
    };
    const requestsOf = (route: string, status: number) => {
      const id = `${route} ${status}`;
      let child = byStatus.get(id);
      if (!child) {
        child = requests.labels(route, String(status));
        byStatus.set(id, child);
      }
      return child;
    };
    const record = (request: FastifyRequest, reply: FastifyReply) => {
      const route =
        request.routeOptions.config.id ??
        routeIdOf(request.routeOptions.method as string | undefined, request.routeOptions.url);
      const status = reply.statusCode;
      requestsOf(route, status).inc();
      const series = seriesOf(route);
      // The app's server counts bodies as they pass (counted.ts); another server is counted only by route.
      const req = request.raw;
      if (req instanceof CountedRequest) {
        series.duration.observe(Number(process.hrtime.bigint() - req.startedAt) / 1e9);
        if (req.bytesIn > 0) series.bytesIn.inc(req.bytesIn);
      }
      const res = reply.raw;
      if (res instanceof CountedResponse && res.bytesOut > 0) series.bytesOut.inc(res.bytesOut);
      if (route === ROUTES.getMemo.id && (status === 200 || status === 404))
        memo.inc({ result: status === 200 ? 'hit' : 'miss' });
    };
    app.addHook('onRequest', (request, reply, done) => {
      reply.raw.once('close', () => record(request, reply));
      done();
    });

    const listen = this.#options.listen;
    if (listen) {
      this.#server = await this.#serve(listen);
      app.addHook('onClose', async () => {
        const server = this.#server;
        this.#server = undefined;
        if (!server) return;
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
        });
      });
    }
  }

  /** A tiny server of its own: GET /metrics and nothing else, so the data API never meets TCP. */
  async #serve(at: { port: number; host: string }): Promise<Server> {
    const server = createServer((req, res) => {
      const path = (req.url ?? '').split('?')[0];
      if (path !== '/metrics' || (req.method !== 'GET' && req.method !== 'HEAD')) {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('only GET /metrics here\n');
        return;
      }
      this.registry.metrics().then(
        (text) => {
          res
            .writeHead(200, { 'content-type': this.registry.contentType })
            .end(req.method === 'HEAD' ? undefined : text);
        },
        (e: unknown) => {
          this.#options.logger?.error({ err: e }, 'metrics collection failed');
          res.writeHead(500, { 'content-type': 'text/plain' }).end('metrics collection failed\n');
        },
      );
    });
    // A scrape is one short request; a stalled one must not hold a socket.
    server.requestTimeout = 10_000;
    server.headersTimeout = 5_000;
    await new Promise<void>((resolve, reject) => {
      const failed = (e: Error) =>
        reject(
          isSystemError(e)
            ? IoError.from(e, { verb: 'listen on', what: `the metrics address ${at.host}:${at.port}` })
            : e,
        );
      server.once('error', failed);
      server.listen({ port: at.port, host: at.host }, () => {
        server.off('error', failed);
        resolve();
      });
    });
    return server;
  }
}
