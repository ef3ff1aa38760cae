import { resolve } from 'node:path';
import { ConfigError, parseSize, type ServeConfig } from '@tarnjs/tarn';
import type { HotCacheSettings } from './hot.js';

/** How the server runs, every default applied: the `serve` section of the config, then flags. */
export interface ServeSettings {
  /** Absolute path of the Unix socket. */
  socket: string;
  socketMode: number;
  socketGroup: string | number | undefined;
  allowDelete: boolean;
  /** Absolute folders whose files POST /v1/blobs/ingest may read (empty: ingest is off). */
  ingestRoots: string[];
  bodyLimit: number;
  maxUploads: number;
  requestTimeoutMs: number;
  idleTimeoutMs: number;
  headersTimeoutMs: number;
  drainTimeoutMs: number;
  metrics: { port: number; host: string } | undefined;
  /** Hot small values kept in memory (hot.ts); size 0: none. */
  hotCache: HotCacheSettings;
}

export const DEFAULTS = {
  socketMode: 0o660,
  bodyLimit: parseSize('100G'),
  maxUploads: 64,
  requestTimeoutMs: 3_600_000,
  idleTimeoutMs: 30_000,
  headersTimeoutMs: 10_000,
  drainTimeoutMs: 25_000,
  metricsHost: '0.0.0.0',
  hotCacheSize: 32 << 20,
  hotValueLimit: 64 << 10,
  hotMaxAgeMs: 60_000,
} as const;

/** A kept value is answered from one buffer: larger ones stream from the tree. */
const HOT_VALUE_CEILING = 1 << 20;

/**
 * The settings of a `serve` section. Relative paths are relative to `base` (the config file's
 * folder); `defaultSocket` is used when the section names none.
 */
export function settingsOf(
  serve: ServeConfig | undefined,
  base: string,
  defaultSocket: string,
): ServeSettings {
  const s = serve ?? {};
  return {
    socket: resolve(base, s.socket ?? defaultSocket),
    socketMode: s.socketMode === undefined ? DEFAULTS.socketMode : Number.parseInt(s.socketMode, 8),
    socketGroup: s.socketGroup,
    allowDelete: s.allowDelete ?? false,
    ingestRoots: (s.ingestRoots ?? []).map((r) => resolve(base, r)),
    bodyLimit:
      s.bodyLimit === undefined ? DEFAULTS.bodyLimit : parseSize(s.bodyLimit, ['serve', 'bodyLimit']),
    maxUploads: s.maxUploads ?? DEFAULTS.maxUploads,
    requestTimeoutMs: s.requestTimeoutMs ?? DEFAULTS.requestTimeoutMs,
    idleTimeoutMs: s.idleTimeoutMs ?? DEFAULTS.idleTimeoutMs,
    headersTimeoutMs: s.headersTimeoutMs ?? DEFAULTS.headersTimeoutMs,
    drainTimeoutMs: s.drainTimeoutMs ?? DEFAULTS.drainTimeoutMs,
    metrics: s.metrics && { port: s.metrics.port, host: s.metrics.host ?? DEFAULTS.metricsHost },
    hotCache: hotCacheSettingsOf(s.hotCache),
  };
}

function hotCacheSettingsOf(hot: ServeConfig['hotCache']): HotCacheSettings {
  const valueLimit =
    hot?.valueLimit === undefined
      ? DEFAULTS.hotValueLimit
      : parseSize(hot.valueLimit, ['serve', 'hotCache', 'valueLimit']);
  if (valueLimit > HOT_VALUE_CEILING)
    throw new ConfigError(`at most ${HOT_VALUE_CEILING} bytes (larger values stream from the tree)`, [
      'serve',
      'hotCache',
      'valueLimit',
    ]);
  return {
    size:
      hot?.size === undefined ? DEFAULTS.hotCacheSize : parseSize(hot.size, ['serve', 'hotCache', 'size']),
    valueLimit,
    maxAgeMs: hot?.maxAgeMs ?? DEFAULTS.hotMaxAgeMs,
  };
}
