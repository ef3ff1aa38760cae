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
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import type { Logger } from 'pino';
import { type AppOptions, buildApp } from './app.js';
import { createLogger, logLevelOf } from './log.js';
import { Metrics } from './plugins/metrics.js';
import { buildTree, type LoadedConfig, oneLine, Reloader, readConfig } from './reload.js';
import { type ServeSettings, settingsOf } from './settings.js';
import {
  listenOnSocket,
  prepareSocket,
  removeSocketSync,
  type SocketIdentity,
  socketIdentity,
} from './socket.js';
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
  const trees = new Trees();
  const spec = options.config ?? options.storage ?? env.TARN_STORAGE ?? './.tarn';
  const path = resolve(cwd, spec);
  const st = await stat(path).catch(() => undefined);
  // --config names a file; --storage (or $TARN_STORAGE) may too, as for the other commands.
  const isConfig =
    options.config !== undefined || st?.isFile() === true || (!st && /\.(ya?ml|json)$/i.test(spec));
  if (isConfig) {
    const loaded = await readConfig(path);
    const built = buildTree(loaded);
    trees.swap(built.storage, built.memoIndex);
    const settings = settingsOf(loaded.config.serve, dirname(path), './.tarn/tarn.sock');
    return { settings: withFlags(settings, options), trees, loaded };
  }
  // A bare lake: created when missing, served with the defaults; its socket sits in it.
  const lake = new DiskLocation(path, { create: true });
  trees.swap(new HashKeyStorage(lake), undefined);
  const settings = settingsOf(undefined, path, 'tarn.sock');
  return { settings: withFlags(settings, options), trees, loaded: undefined };
}

/** The flags override the config's `serve` section. */
function withFlags(settings: ServeSettings, options: ServeOptions): ServeSettings {
  const out = { ...settings };
  if (options.socket !== undefined) out.socket = resolve(options.cwd, options.socket);
  if (options.allowDelete) out.allowDelete = true;
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
 * Runs the sidecar until SIGTERM or SIGINT (or `options.signal`): builds the tree, binds the
 * socket, serves, reloads the config when it changes; then drains and exits cleanly. Resolves with
 * the exit status; throws (before anything is bound) when it cannot start.
 */
export async function serve(options: ServeOptions): Promise<number> {
  const logger = createLogger({ level: logLevelOf(options.env) });
  const source = await sourceOf(options);
  const { settings, trees } = source;
  let reloader: Reloader | undefined;
  let metrics: Metrics | undefined;
  const readiness = (): ReadinessBody =>
    reloader?.readiness() ?? {
      ready: trees.current() !== undefined,
      generation: trees.generation,
      loadedAt: null,
      lastReload: null,
    };
  if (source.loaded) {
    reloader = new Reloader({
      loaded: source.loaded,
      trees,
      logger,
      onFailure: () => metrics?.reloadFailures.inc(),
    });
  }
  metrics = new Metrics({ trees, readiness, listen: settings.metrics, logger });

  let app: FastifyInstance;
  try {
    app = await buildApp({
      trees,
      settings,
      logger,
      readiness,
      instrument: metrics.plugin,
    } as AppOptions & { instrument: FastifyPluginAsync });
    await prepareSocket(settings.socket, options.signal);
    await app.ready();
  } catch (e) {
    await trees.close();
    throw e;
  }

  // From the bind on, whatever ends the process removes the socket (ours only: same inode).
  let bound: SocketIdentity | undefined;
  const removeSocket = () => {
    if (bound) removeSocketSync(settings.socket, bound);
  };
  process.on('exit', removeSocket);
  try {
    await listenOnSocket(app.server, settings.socket, settings.socketMode, settings.socketGroup, () =>
      app.listen({ path: settings.socket }),
    );
    bound = socketIdentity(settings.socket);
  } catch (e) {
    bound = socketIdentity(settings.socket);
    await app.close().catch(() => undefined);
    await trees.close();
    removeSocket();
    process.off('exit', removeSocket);
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
  return await runUntilStopped({
    app,
    trees,
    settings,
    logger,
    reloader,
    removeSocket,
    signal: options.signal,
  });
}

interface Running {
  app: FastifyInstance;
  trees: Trees;
  settings: ServeSettings;
  logger: Logger;
  reloader: Reloader | undefined;
  removeSocket: () => void;
  signal: AbortSignal | undefined;
}

/**
 * Waits for a stop signal, then drains. SIGHUP reloads the config. A second SIGTERM or SIGINT
 * exits at once (the socket is removed all the same). An uncaught error is logged and exits 1,
 * without leaving the socket behind.
 */
function runUntilStopped(r: Running): Promise<number> {
  const { app, trees, settings, logger, reloader, removeSocket } = r;
  return new Promise<number>((done) => {
    let stopping = false;
    // biome-ignore lint/suspicious/noExplicitAny: process.on's own listener type
    type Listener = (...args: any[]) => void;
    const handlers: Array<[string, Listener]> = [];
    const on = (event: string, handler: Listener) => {
      process.on(event, handler);
      handlers.push([event, handler]);
    };
    const cleanup = () => {
      for (const [event, handler] of handlers) process.off(event, handler);
      r.signal?.removeEventListener('abort', onAbort);
      process.off('exit', removeSocket);
    };
    const stop = async (why: string) => {
      stopping = true;
      logger.info(
        { event: 'stopping', reason: why, drainTimeoutMs: settings.drainTimeoutMs },
        `stopping (${why})`,
      );
      await reloader?.close();
      const closing = app.close();
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<true>((resolve) => {
        timer = setTimeout(() => resolve(true), settings.drainTimeoutMs);
      });
      const cut = await Promise.race([closing.then(() => false as const), timedOut]);
      clearTimeout(timer);
      if (cut) {
        logger.warn(
          { event: 'stopping' },
          `requests still running after ${settings.drainTimeoutMs} ms are cut`,
        );
        app.server.closeAllConnections();
      }
      await closing.catch((e: unknown) => logger.error({ err: e }, `closing the server: ${oneLine(e)}`));
      if (!(await trees.idle(CLEANUP_MS)))
        logger.warn(
          { event: 'stopping' },
          'requests did not let go of the storage in time; closing it anyway',
        );
      await trees.close();
      removeSocket();
      logger.info({ event: 'stopped' }, 'stopped');
      cleanup();
      logger.flush(() => done(0));
    };
    // Counted apart from `stopping`: the CLI turns the first SIGTERM into an abort of `r.signal`
    // too, and that abort must not make the same SIGTERM look like a second one.
    let signals = 0;
    const onSignal = (signal: NodeJS.Signals) => {
      signals++;
      if (signals === 1) {
        if (!stopping) void stop(signal);
        return;
      }
      // The second one: no more waiting.
      logger.warn({ event: 'stopped', reason: signal }, `second ${signal}: exiting now`);
      removeSocket();
      logger.flush();
      process.exit(signal === 'SIGINT' ? 130 : 143);
    };
    const onAbort = () => {
      if (!stopping) void stop('aborted');
    };
    const onFatal = (e: unknown) => {
      const status = statusOf(e);
      logger.fatal({ err: e, code: status.code }, `uncaught: ${oneLine(e)}`);
      removeSocket();
      logger.flush();
      process.exit(1);
    };
    on('SIGTERM', onSignal);
    on('SIGINT', onSignal);
    on('SIGHUP', () => {
      if (reloader && !stopping) void reloader.reload(true);
    });
    on('uncaughtException', onFatal);
    on('unhandledRejection', onFatal);
    if (r.signal?.aborted) onAbort();
    else r.signal?.addEventListener('abort', onAbort, { once: true });
  });
}
