import type { Digest } from './digest.js';
import { AbortError } from './errors.js';
import type { ForeignEntry, Housekeeping, Location, OpOptions, Value } from './location/contract.js';
import { leavesOf, locationsOf, whereOf } from './location/tree.js';

export interface VerifyReport {
  /** Copies checked: a key held by two lakes of the tree counts twice. */
  checked: number;
  /** Bytes hashed. */
  bytes: number;
  /** Corrupt copies, each taken out of service in its own lake only (the others keep theirs). */
  corrupt: CorruptCopy[];
  /**
   * Entries of a lake where a value belongs that are not values (a symbolic link, a FIFO, a socket,
   * a device node, a file in place of a folder, a legacy `<key>/` without a regular `data`). Never
   * read, followed or counted; left in place for someone to look at.
   */
  foreign: ForeignEntry[];
  /** What each location's housekeeping did (stale temp files removed, accounting rebuilt), for those that do any. */
  housekeeping: Array<{ where: string; done: Housekeeping }>;
  /**
   * What could not be checked, and why: a lake that could not list its keys (down), a copy that
   * could not be read (with its `key`), housekeeping that failed. Everything else was checked.
   */
  failed: Array<{ where: string; key?: string; message: string }>;
}

export interface CorruptCopy {
  key: string;
  /** What the bytes hash to. */
  actual: string | undefined;
  /** The lake that held the copy (`disk /srv/lake`). */
  where: string;
  /** Where the copy was moved (a disk's tools/quarantine/), or undefined where it was deleted. */
  quarantinedTo: string | undefined;
  /** Why the copy could not be taken out of service, when it could not (it is still there). */
  notMoved?: string;
}

export interface VerifyOptions extends OpOptions {
  onProgress?: (checked: number, key: string) => void;
}

/**
 * Verifies a location tree: every copy in every lake (each leaf, read directly: a verification is
 * no use of a value, so nothing is copied between levels or touched), then every location's
 * housekeeping. A lake that fails is reported in `failed`, and the others are still verified; only
 * the caller's abort stops the run.
 */
export async function verifyTree(
  root: Location,
  digest: Digest,
  options: VerifyOptions = {},
): Promise<VerifyReport> {
  const report: VerifyReport = {
    checked: 0,
    bytes: 0,
    corrupt: [],
    foreign: [],
    housekeeping: [],
    failed: [],
  };
  for (const leaf of leavesOf(root)) {
    try {
      await verifyLeaf(leaf, digest, report, options);
    } catch (e) {
      failed(report, whereOf(leaf), undefined, e, options.signal);
    }
  }
  for (const location of locationsOf(root)) {
    if (!location.sweep) continue;
    try {
      report.housekeeping.push({ where: whereOf(location), done: await location.sweep(options) });
    } catch (e) {
      failed(report, whereOf(location), undefined, e, options.signal);
    }
  }
  return report;
}

/** Checks every copy one lake holds; a copy it cannot read is reported and the lake goes on. */
async function verifyLeaf(
  leaf: Location,
  digest: Digest,
  report: VerifyReport,
  options: VerifyOptions,
): Promise<void> {
  const { signal } = options;
  const where = whereOf(leaf);
  for await (const key of leaf.keys({ signal })) {
    // Keys of another digest's length are not this storage's (a memo index, Python's labels).
    if (key.length !== digest.hexLength) continue;
    let actual: string;
    try {
      // Checking a blob is not using it: the lakes' last-use records stay as they are.
      const raw = await leaf.read(key, { signal, digest, touch: false });
      if (!raw) continue; // deleted while we walked
      try {
        actual = await hashOf(raw, digest, report, signal);
      } finally {
        await raw.close();
      }
    } catch (e) {
      failed(report, where, key, e, signal);
      continue;
    }
    if (actual !== key) report.corrupt.push(await quarantine(leaf, key, actual, where));
    report.checked++;
    options.onProgress?.(report.checked, key);
  }
  if (leaf.foreign) for await (const entry of leaf.foreign({ signal })) report.foreign.push(entry);
}

/** A copy's digest: by the location's own hashing where it has one (a file), else through its stream. */
async function hashOf(
  raw: Value,
  digest: Digest,
  report: VerifyReport,
  signal?: AbortSignal,
): Promise<string> {
  if (raw.hash && raw.size !== undefined) {
    const actual = await raw.hash(digest, { signal });
    report.bytes += raw.size;
    return actual;
  }
  const h = digest.create();
  for await (const chunk of raw.stream({ signal })) {
    h.update(chunk as Buffer);
    report.bytes += (chunk as Buffer).byteLength;
  }
  return h.digest('hex');
}

/** Takes a corrupt copy out of its lake (kept aside where the lake can, else deleted). */
async function quarantine(leaf: Location, key: string, actual: string, where: string): Promise<CorruptCopy> {
  try {
    if (leaf.quarantine) return { key, actual, where, quarantinedTo: await leaf.quarantine(key) };
    await leaf.delete(key);
    return { key, actual, where, quarantinedTo: undefined };
  } catch (e) {
    // Still corrupt, still reported (a read-only lake, say): the verification goes on.
    return { key, actual, where, quarantinedTo: undefined, notMoved: (e as Error).message ?? String(e) };
  }
}

function failed(
  report: VerifyReport,
  where: string,
  key: string | undefined,
  e: unknown,
  signal: AbortSignal | undefined,
): void {
  if (signal?.aborted) throw e instanceof AbortError ? e : new AbortError(signal.reason);
  report.failed.push({
    where,
    ...(key === undefined ? {} : { key }),
    message: (e as Error).message ?? String(e),
  });
}
