import { UnsupportedError, UsageError } from '../errors.js';
import { parseSize } from '../util/size.js';

/**
 * The flags of `tarn serve` (and of `tarn-sidecar`, the image's entrypoint, which takes the same):
 * the library parses them, the sidecar package runs the server. The library never imports the
 * sidecar statically (the sidecar depends on the library): `tarn serve` loads it when it runs.
 */
export const SERVE_OPTIONS = {
  config: { type: 'string', short: 'c' },
  storage: { type: 'string', short: 's' },
  socket: { type: 'string' },
  'metrics-port': { type: 'string' },
  'metrics-host': { type: 'string' },
  'allow-delete': { type: 'boolean' },
  'hot-cache': { type: 'string' },
  'ingest-root': { type: 'string', multiple: true },
} as const;

/** The flags, checked. Each overrides the config's `serve` section. */
export interface ServeFlags {
  /** A config file (the one schema; its `serve` section); its tree is reloaded when it changes. */
  config?: string;
  /** A lake folder (created when missing), or a config file; default $TARN_STORAGE, else ./.tarn. */
  storage?: string;
  socket?: string;
  metricsPort?: number;
  metricsHost?: string;
  allowDelete?: boolean;
  /** Bytes of hot small values kept in memory (serve.hotCache.size); 0: none. */
  hotCache?: number;
  /** Folders whose files the sidecar may ingest by path (serve.ingestRoots; the flags replace it). */
  ingestRoots?: string[];
}

/** What `tarn serve` hands to `@tarnjs/sidecar`'s `serve()`. */
export interface ServeCommandOptions extends ServeFlags {
  /** Relative paths of the flags are relative to this. */
  cwd: string;
  env: Readonly<Record<string, string | undefined>>;
  /** Where the banner (where it listens, a curl line to try) goes; the JSON logs go to stdout. */
  stderr: NodeJS.WritableStream;
  /** Aborting it stops the server as SIGTERM does. */
  signal?: AbortSignal;
}

/** The part of `@tarnjs/sidecar` the CLI uses. */
export interface SidecarModule {
  /** Runs the server until it is stopped; resolves with the exit status. Throws if it cannot start. */
  serve(options: ServeCommandOptions): Promise<number>;
}

interface ServeValues {
  config?: string;
  storage?: string;
  socket?: string;
  'metrics-port'?: string;
  'metrics-host'?: string;
  'allow-delete'?: boolean;
  'hot-cache'?: string;
  'ingest-root'?: string[];
}

export function serveFlagsOf(values: ServeValues): ServeFlags {
  const flags: ServeFlags = {};
  if (values.config !== undefined) flags.config = values.config;
  if (values.storage !== undefined) flags.storage = values.storage;
  if (values.config !== undefined && values.storage !== undefined)
    throw new UsageError('serve takes --config or --storage, not both');
  if (values.socket !== undefined) {
    if (values.socket === '') throw new UsageError('--socket needs a path');
    flags.socket = values.socket;
  }
  const port = values['metrics-port'];
  if (port !== undefined) {
    if (!/^\d{1,5}$/.test(port) || Number(port) > 65535)
      throw new UsageError(`--metrics-port ${JSON.stringify(port)} is not a TCP port (0 to 65535)`);
    flags.metricsPort = Number(port);
  }
  if (values['metrics-host'] !== undefined) {
    if (values['metrics-host'] === '') throw new UsageError('--metrics-host needs an address');
    flags.metricsHost = values['metrics-host'];
  }
  if (values['allow-delete']) flags.allowDelete = true;
  const hot = values['hot-cache'];
  if (hot !== undefined) {
    try {
      flags.hotCache = parseSize(hot);
    } catch {
      throw new UsageError(`--hot-cache ${JSON.stringify(hot)} is not a size (0, 64MiB, 100M)`);
    }
  }
  const roots = values['ingest-root'];
  if (roots !== undefined) {
    if (roots.some((r) => r === '')) throw new UsageError('--ingest-root needs a folder');
    flags.ingestRoots = roots;
  }
  return flags;
}

// In a variable, so that TypeScript does not resolve it at build time (the sidecar is built after
// the library, and is an optional install).
const SIDECAR = '@tarnjs/sidecar';

/** Loads the sidecar package; a clear error when it is not installed. */
export async function loadSidecar(): Promise<SidecarModule> {
  try {
    return (await import(SIDECAR)) as SidecarModule;
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    // Only the sidecar itself missing is "not installed"; a dependency of it missing is a broken install.
    if (err?.code === 'ERR_MODULE_NOT_FOUND' && err.message.includes(`'${SIDECAR}'`)) {
      throw new UnsupportedError(
        `tarn serve needs the sidecar package, which is not installed: npm install ${SIDECAR} (next to @tarnjs/tarn)`,
      );
    }
    throw e;
  }
}
