import { stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import {
  DiskLocation,
  HashKeyStorage,
  type Location,
  type ServeCommandOptions,
  statusOf,
  UsageError,
} from '@tarnjs/tarn';
import { type ReadinessBody, ROUTES } from '@tarnjs/tarn/sidecar-api';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { buildApp } from './app.js';
import { createLogger, logLevelOf } from './log.js';
import { Metrics } from './plugins/metrics.js';
import { buildTree, type LoadedConfig, oneLine, Reloader, readConfig } from './reload.js';
import { type ServeSettings, settingsOf } from './settings.js';
import { listenOnSocket, prepareSocket, removeSocketSync, type SocketIdentity } from './socket.js';
import { Trees } from './trees.js';

export type ServeOptions = ServeCommandOptions;

/** After the drain, how long requests that were cut get to release their tree (remove temp files). */
const CLEANUP_MS = 5_000;

/** Where the storage comes from: a config file (watched), or a bare lake folder. */
interface Source {
  settings: ServeSettings;
  trees: Trees;
  /** The config file as loaded, when there is one (then watched). */
  loaded: LoadedConfig | undefined;
}

async function sourceOf(options: ServeOptions): Promise<Source> {
  const { cwd, env } = options;
  // An empty $TARN_STORAGE is no storage named.
  const spec = options.config ?? options.storage ?? (env.TARN_STORAGE || './.tarn');
  const path = resolve(cwd, spec);
  const st = await stat(path).catch(() => undefined);
  // --config names a file; --storage (or $TARN_STORAGE) may too, as for the other commands.
  const isConfig =
    options.config !== undefined || st?.isFile() === true || (!st && /\.(ya?ml|json)$/i.test(spec));
  if (isConfig) {
    const loaded = await readConfig(path);
    const settings = withFlags(settingsOf(loaded.config.serve, dirname(path), './.tarn/tarn.sock'), options);
    const built = buildTree(loaded);
    const trees = new Trees(settings.hotCache);
    trees.swap(built.storage, built.memoIndex);
    return { settings, trees, loaded };
  }
  // A bare lake: created when missing, served with the defaults; its socket sits in it.
  const settings = withFlags(settingsOf(undefined, path, 'tarn.sock'), options);
  const lake = new DiskLocation(path, { create: true });
  const trees = new Trees(settings.hotCache);
  trees.swap(new HashKeyStorage(lake), undefined);
  return { settings, trees, loaded: undefined };
}

/** The flags override the config's `serve` section. */
function withFlags(settings: ServeSettings, options: ServeOptions): ServeSettings {
  const out = { ...settings };
  if (options.socket !== undefined) out.socket = resolve(options.cwd, options.socket);
  if (options.allowDelete) out.allowDelete = true;
  if (options.hotCache !== undefined) out.hotCache = { ...settings.hotCache, size: options.hotCache };
  if (options.ingestRoots !== undefined)
    out.ingestRoots = options.ingestRoots.map((r) => resolve(options.cwd, r));
  if (options.metricsPort !== undefined)
    out.metrics = {
      port: options.metricsPort,
      host: options.metricsHost ?? settings.metrics?.host ?? '0.0.0.0',
    };
  else if (options.metricsHost !== undefined) {
    if (!settings.metrics)
      throw new UsageError('--metrics-host needs --metrics-port (or serve.metrics.port in the config)');
    out.metrics = { ...settings.metrics, host: options.metricsHost };
  }
  return out;
}

/** A path as a shell word, for the curl line. */
function shellWord(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replaceAll("'", `'\\''`)}'`;
}

function whereOf(location: Location): string {
  return `${location.kind} ${location.target}`;
}

/**
 * The process's signals, from the start (a SIGTERM while the tree is built stops the server as
 * soon as it listens): the first SIGTERM or SIGINT (or an abort of the CLI's signal) asks for a
 * stop; a second one exits at once. SIGHUP reloads the config. An uncaught error is logged and
 * exits 1. Whatever ends the process, `removeSocket` runs first (it does nothing until bound).
 */
class Lifecycle {
  readonly #logger: Logger;
  readonly #signal: AbortSignal | undefined;
  // biome-ignore lint/suspicious/noExplicitAny: process.on's own listener type
  readonly #handlers: Array<[string, (...args: any[]) => void]> = [];
  /** Counted apart from the stop request: the CLI turns the first SIGTERM into an abort of its signal too. */
  #signals = 0;
  #stop: string | undefined;
  #onStop: ((why: string) => void) | undefined;
  removeSocket: () => void = () => undefined;
  reload: () => void = () => undefined;

  constructor(logger: Logger, signal: AbortSignal | undefined) {
    this.#logger = logger;
    this.#signal = signal;
    const onSignal = (name: NodeJS.Signals) => {
      this.#signals++;
      if (this.#signals === 1) return this.#request(name);
      logger.warn({ event: 'stopped', reason: name }, `second ${name}: exiting now`);
      this.#exit(name === 'SIGINT' ? 130 : 143);
    };
    const onFatal = (e: unknown) => {
      logger.fatal({ err: e, code: statusOf(e).code }, `uncaught: ${oneLine(e)}`);
      this.#exit(1);
    };
    this.#on('SIGTERM', onSignal);
    this.#on('SIGINT', onSignal);
    this.#on('SIGHUP', () => this.reload());
    this.#on('uncaughtException', onFatal);
    this.#on('unhandledRejection', onFatal);
    this.#on('exit', () => this.removeSocket());
    if (signal?.aborted) this.#onAbort();
    else signal?.addEventListener('abort', this.#onAbort, { once: true });
  }

  /** The CLI aborts with Error('SIGTERM') or Error('SIGINT'): the reason names the signal. */
  readonly #onAbort = () => {
    const reason = this.#signal?.reason;
    this.#request(reason instanceof Error ? reason.message : 'aborted');
  };

  // biome-ignore lint/suspicious/noExplicitAny: process.on's own listener type
  #on(event: string, handler: (...args: any[]) => void): void {
    process.on(event, handler);
    this.#handlers.push([event, handler]);
  }

  #request(why: string): void {
    if (this.#stop !== undefined) return;
    this.#stop = why;
    this.#onStop?.(why);
  }

  #exit(code: number): never {
    this.removeSocket();
    this.#logger.flush();
    process.exit(code);
  }

  /** Resolves with the reason once a stop is asked for (at once if it already was). */
  stopped(): Promise<string> {
    return new Promise((resolve) => {
      if (this.#stop !== undefined) resolve(this.#stop);
      else this.#onStop = resolve;
    });
  }

  dispose(): void {
    for (const [event, handler] of this.#handlers) process.off(event, handler);
    this.#signal?.removeEventListener('abort', this.#onAbort);
  }
}

/**
 * Runs the sidecar until SIGTERM or SIGINT (or `options.signal`): builds the tree, binds the
 * socket, serves, reloads the config when it changes; then drains and stops cleanly. Resolves with
 * the exit status; throws (having bound nothing, or removed what it bound) when it cannot start.
 */
export async function serve(options: ServeOptions): Promise<number> {
  const logger = createLogger({ level: logLevelOf(options.env) });
  const life = new Lifecycle(logger, options.signal);
  try {
    return await run(options, logger, life);
  } finally {
    life.dispose();
  }
}

async function run(options: ServeOptions, logger: Logger, life: Lifecycle): Promise<number> {
  const source = await sourceOf(options);
  const { settings, trees } = source;
  let reloader: Reloader | undefined;
  let metrics: Metrics | undefined;
  const startedAt = new Date().toISOString();
  // A bare lake is never reloaded: ready once built.
  const readiness = (): ReadinessBody =>
    reloader?.readiness() ?? {
      ready: trees.current() !== undefined,
      generation: trees.generation,
      loadedAt: startedAt,
      lastReload: null,
    };
  if (source.loaded) {
    const r = new Reloader({
      loaded: source.loaded,
      trees,
      logger,
      onFailure: () => metrics?.reloadFailures.inc(),
    });
    reloader = r;
    life.reload = () => void r.reload(true);
  }
  metrics = new Metrics({ trees, readiness, listen: settings.metrics, logger });

  let app: FastifyInstance | undefined;
  try {
    app = await buildApp({ trees, settings, logger, readiness, instrument: metrics.plugin });
    // Not aborted by a stop asked for meanwhile: the probe is quick, and a stop during startup is
    // taken once the server listens (exit 0, socket removed), not as a failure to start.
    await prepareSocket(settings.socket);
    await app.ready();
    const server = app;
    await listenOnSocket(
      app.server,
      settings.socket,
      settings.socketMode,
      settings.socketGroup,
      () => server.listen({ path: settings.socket }),
      (bound: SocketIdentity) => {
        // From the bind on, whatever ends the process removes the socket (ours only: same inode).
        life.removeSocket = () => removeSocketSync(settings.socket, bound);
      },
    );
  } catch (e) {
    await app?.close().catch(() => undefined);
    await trees.close();
    life.removeSocket();
    throw e;
  }

  const tree = trees.current();
  const lines = [
    `tarn serve: listening on ${settings.socket} (mode ${settings.socketMode.toString(8).padStart(4, '0')}${settings.socketGroup === undefined ? '' : `, group ${settings.socketGroup}`})`,
    `  storage: ${tree ? whereOf(tree.storage.location) : 'none'}${reloader ? ` (config ${reloader.file}, reloaded when it changes)` : ''}`,
  ];
  if (metrics.address) {
    const { address, port, family } = metrics.address;
    lines.push(`  metrics: http://${family === 'IPv6' ? `[${address}]` : address}:${port}/metrics`);
  }
  lines.push(`  try: curl --unix-socket ${shellWord(settings.socket)} http://tarn${ROUTES.describe.url}`);
  options.stderr.write(`${lines.join('\n')}\n`);
  logger.info(
    { event: 'listening', socket: settings.socket, generation: trees.generation, metrics: metrics.address },
    'listening',
  );
  reloader?.start();

  const why = await life.stopped();
  await drain({ app, trees, settings, logger, reloader, why });
  life.removeSocket();
  logger.info({ event: 'stopped' }, 'stopped');
  await new Promise<void>((resolve) => logger.flush(() => resolve()));
  return 0;
}

/**
 * Stops accepting (fastify answers 503 on connections still open), lets requests in flight finish
 * within `drainTimeoutMs`, then cuts the rest; waits for cut requests to let go of the storage
 * (their cleanup: temp files), and closes every tree.
 */
async function drain(r: {
  app: FastifyInstance;
  trees: Trees;
  settings: ServeSettings;
  logger: Logger;
  reloader: Reloader | undefined;
  why: string;
}): Promise<void> {
  const { app, trees, settings, logger } = r;
  logger.info(
    { event: 'stopping', reason: r.why, drainTimeoutMs: settings.drainTimeoutMs },
    `stopping (${r.why})`,
  );
  await r.reloader?.close();
  const closing = app.close();
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<true>((resolve) => {
    timer = setTimeout(() => resolve(true), settings.drainTimeoutMs);
  });
  const cut = await Promise.race([closing.then(() => false as const), timedOut]);
  clearTimeout(timer);
  if (cut) {
    logger.warn({ event: 'stopping' }, `requests still running after ${settings.drainTimeoutMs} ms are cut`);
    app.server.closeAllConnections();
  }
  await closing.catch((e: unknown) => logger.error({ err: e }, `closing the server: ${oneLine(e)}`));
  if (!(await trees.idle(CLEANUP_MS)))
    logger.warn({ event: 'stopping' }, 'requests did not let go of the storage in time; closing it anyway');
  await trees.close();
}
