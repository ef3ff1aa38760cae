import { stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { fromConfigFile } from '../config/load.js';
import type { LocationConfig } from '../config/schema.js';
import { digest } from '../digest.js';
import type { Location, Stage, Value } from '../location/contract.js';
import {
  allReachable,
  describeTree,
  type LocationDescription,
  type StorageDescription,
} from '../location/describe.js';
import { DiskLocation } from '../location/disk/index.js';
import { HashKeyStorage } from '../storage.js';
import { formatSize } from '../util/size.js';

/** One node of `tarn describe`'s tree (the library's description). */
export type DescribedNode = LocationDescription;

/** What `tarn describe` prints: the library's description of the storage, and how it was named. */
export interface Description extends StorageDescription {
  storage: string;
}

/** Probes answer within this long, or count as unreachable (a host that drops packets must not hang describe). */
const PROBE_MS = 5000;

/**
 * Builds the storage at `spec` without creating anything (create: false) and probes every leaf
 * concurrently. A leaf that cannot even be built (a missing lake folder) is reported, not thrown.
 */
export async function describeStorage(spec: string): Promise<Description> {
  const st = await stat(spec).catch(() => undefined);
  let root: Location;
  let algorithm = 'sha256';
  if (st?.isFile()) {
    // Built as every other command builds it (so a digest the lakes disagree with is a config error).
    const base = dirname(resolve(spec));
    const storage = await fromConfigFile(spec, {
      create: false,
      onLeafError: (e, c) => new Unbuilt(c.kind === 'disk' ? { ...c, root: resolve(base, c.root) } : c, e),
    });
    root = storage.location;
    algorithm = storage.algorithm;
  } else {
    try {
      const storage = new HashKeyStorage(new DiskLocation(spec, { create: false }));
      root = storage.location;
      algorithm = storage.algorithm;
    } catch (e) {
      root = new Unbuilt({ kind: 'disk', root: resolve(spec) }, e);
    }
  }
  try {
    const location = await describeTree(root, { probeTimeoutMs: PROBE_MS, digest: digest(algorithm) });
    return { storage: spec, algorithm, reachable: allReachable(location), location };
  } finally {
    await closeQuietly(root);
  }
}

async function closeQuietly(location: Location): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    location.close().catch(() => undefined),
    new Promise<void>((done) => {
      timer = setTimeout(done, 2000);
      timer.unref();
    }),
  ]);
  clearTimeout(timer);
}

/** Stands in for a leaf that could not be built, so the rest of the tree can still be described. */
class Unbuilt implements Location {
  readonly kind: string;
  readonly target: string;
  readonly error: Error;

  constructor(config: LocationConfig, error: unknown) {
    this.kind = config.kind ?? 'ref';
    this.target = targetOf(config);
    this.error = error instanceof Error ? error : new Error(String(error));
  }
  read(): Promise<Value | null> {
    return Promise.reject(this.error);
  }
  stage(): Promise<Stage | null> {
    return Promise.reject(this.error);
  }
  contains(): Promise<boolean> {
    return Promise.reject(this.error);
  }
  delete(): Promise<boolean> {
    return Promise.reject(this.error);
  }
  touch(): Promise<boolean> {
    return Promise.reject(this.error);
  }
  // biome-ignore lint/correctness/useYield: it has nothing to list; it only fails
  async *keys(): AsyncIterable<string> {
    throw this.error;
  }
  async close(): Promise<void> {}
}

function targetOf(c: LocationConfig): string {
  switch (c.kind) {
    case 'disk':
      return c.root;
    case 'redis':
      return c.url ?? 'redis://127.0.0.1:6379';
    case 's3':
      return `s3://${c.bucket}/${c.prefix ?? ''}`;
    case 'sftp':
    case 'scp':
      return `${c.host}:${c.root}`;
    case 'nginx':
      return c.url;
    default:
      return '';
  }
}

const KNOWN_FLAGS = new Set(['levels', 'maxSize', 'minFreeSpace']);

/** The tree as indented lines: kind, target, flags, and for leaves whether they answered. */
export function formatDescription(d: Description): string {
  const lines: string[] = [];
  const walk = (n: DescribedNode, depth: number) => {
    const flags: string[] = [];
    if (n.level) {
      const l = n.level;
      flags.push(l.write ? 'write' : 'no write', l.replicate ? 'replicate' : 'no replicate');
      if (l.touch) flags.push('touch');
      if (l.timeoutMs !== undefined) flags.push(`timeout ${l.timeoutMs} ms`);
    }
    const f = n.flags;
    if (Array.isArray(f.levels)) flags.push(`levels ${f.levels.join(',')}`);
    if (typeof f.maxSize === 'number') flags.push(`max ${formatSize(f.maxSize)}`);
    if (typeof f.minFreeSpace === 'number') flags.push(`min free ${formatSize(f.minFreeSpace)}`);
    // Flags of locations this formatter does not know (a custom location's) are shown as they are.
    for (const [name, value] of Object.entries(f)) {
      if (!KNOWN_FLAGS.has(name)) flags.push(`${name} ${JSON.stringify(value)}`);
    }
    const label = n.level ? `${n.level.name ?? n.level.index}: ` : '';
    const status = n.reachable === undefined ? '' : n.reachable ? '  reachable' : `  unreachable: ${n.error}`;
    lines.push(
      `${'  '.repeat(depth)}${label}${n.kind}${n.target ? ` ${n.target}` : ''}${flags.length ? ` [${flags.join(', ')}]` : ''}${status}`,
    );
    for (const c of n.children ?? []) walk(c, depth + 1);
  };
  walk(d.location, 0);
  return lines.join('\n');
}
