import type { Digest } from '../digest.js';
import { raceAbort } from '../errors.js';
import type { Flags, Location, OpOptions } from './contract.js';
import { isLeaf, type TreeEntry, walkTree } from './tree.js';

/**
 * One node of a described location tree, as plain JSON: what `tarn describe --json` prints and
 * the sidecar's `/v1/describe` serves. The library builds it; the CLI only formats it.
 */
export interface LocationDescription {
  kind: string;
  /** Where a leaf is (folder, URL, host:path); combinators have none of their own. */
  target?: string;
  /** The node's own settings (`Location.describe()`): a disk's layout and caps, Small's limit. */
  flags: Flags;
  /** For a level of a Levels: how the hierarchy uses it. */
  level?: {
    index: number;
    write: boolean;
    replicate: boolean;
    touch: boolean;
    name?: string;
    timeoutMs?: number;
  };
  /** Leaves, when probed: whether the location answered a lookup in time; if not, `error` says why. */
  reachable?: boolean;
  error?: string;
  children?: LocationDescription[];
}

/** A storage described: its digest, whether every leaf answered, and its tree. */
export interface StorageDescription {
  algorithm: string;
  reachable: boolean;
  location: LocationDescription;
}

export interface DescribeOptions extends OpOptions {
  /** Ask every leaf one lookup, concurrently and each instance once, and say whether it answered (default true). */
  probe?: boolean;
  /** A leaf that does not answer within this long counts as unreachable (default 5000 ms). */
  probeTimeoutMs?: number;
  /** The digest of the tree's keys, so that the probe asks for a key of the right length (default sha256's). */
  digest?: Digest;
}

/**
 * Describes the tree under `root` from what its locations declare (`children()`, `describe()`,
 * `target`). A location in two places is described in both (and probed once). A leaf that fails
 * or hangs is described as unreachable, with the reason; only the caller's own abort throws.
 */
export async function describeTree(
  root: Location,
  options: DescribeOptions = {},
): Promise<LocationDescription> {
  const probe = options.probe ?? true;
  const probes = new Map<Location, Promise<string | undefined>>();
  const nodes = new Map<TreeEntry, LocationDescription>();
  const pending: Array<Promise<void>> = [];
  let top: LocationDescription | undefined;
  for (const entry of walkTree(root)) {
    const { location, use } = entry;
    const node: LocationDescription = { kind: location.kind, flags: location.describe?.() ?? {} };
    if (use?.as === 'level') {
      const { index, write, replicate, touch, name, timeoutMs } = use;
      node.level = { index, write, replicate, touch };
      if (name !== undefined) node.level.name = name;
      if (timeoutMs !== undefined) node.level.timeoutMs = timeoutMs;
    }
    nodes.set(entry, node);
    const parent = entry.parent && nodes.get(entry.parent);
    if (parent) parent.children?.push(node);
    else top = node;
    if (!isLeaf(location)) {
      node.children = [];
      continue;
    }
    node.target = location.target;
    if (!probe) continue;
    let answer = probes.get(location);
    if (!answer) {
      answer = reach(location, options);
      probes.set(location, answer);
    }
    pending.push(
      answer.then((error) => {
        node.reachable = error === undefined;
        if (error !== undefined) node.error = error;
      }),
    );
  }
  await Promise.all(pending);
  return top as LocationDescription;
}

/** False when a probed leaf of the description did not answer. */
export function allReachable(d: LocationDescription): boolean {
  return d.reachable !== false && (d.children ?? []).every(allReachable);
}

/** Undefined when the location answered a lookup in time; else why not. */
async function reach(location: Location, options: DescribeOptions): Promise<string | undefined> {
  const ms = options.probeTimeoutMs ?? 5000;
  const timeout = AbortSignal.timeout(ms);
  const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
  // Any key will do: the answer (present or not) proves the location is there and readable.
  const key = '0'.repeat(options.digest?.hexLength ?? 64);
  try {
    await raceAbort(location.contains(key, { signal }), signal);
    return undefined;
  } catch (e) {
    if (options.signal?.aborted) throw e;
    return timeout.aborted ? `no answer within ${ms / 1000} s` : ((e as Error).message ?? String(e));
  }
}
