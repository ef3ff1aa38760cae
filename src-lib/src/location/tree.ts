import type { Digest } from '../digest.js';
import { ConfigError } from '../errors.js';
import type { ChildUse, Leasing, Location } from './contract.js';

/** One place of a location in a tree. */
export interface TreeEntry {
  readonly location: Location;
  /** How its parent uses it; undefined at the root. */
  readonly use?: ChildUse;
  /** Its parent's entry; undefined at the root. */
  readonly parent?: TreeEntry;
  /** False when the walk met this instance before: one location in two places (a config `ref`). */
  readonly first: boolean;
}

/**
 * The tree under `root` as its locations declare it (`children()`), depth first, each parent before
 * its children, every place of every location: a location in two places comes twice, `first` only
 * the first time. The one walk of the library: verification, `describe`, the digest check and the
 * lease search all read it, when a storage is built, verified or described (never per operation).
 */
export function* walkTree(root: Location): Iterable<TreeEntry> {
  const seen = new Set<Location>();
  function* visit(location: Location, use?: ChildUse, parent?: TreeEntry): Iterable<TreeEntry> {
    // A custom combinator could list itself below itself; without this the walk would never end.
    for (let p = parent; p; p = p.parent) {
      if (p.location === location)
        throw new ConfigError(`${whereOf(location)} contains itself; a location tree cannot have cycles`);
    }
    const entry: TreeEntry = { location, use, parent, first: !seen.has(location) };
    seen.add(location);
    yield entry;
    for (const child of location.children?.() ?? []) yield* visit(child.location, child.use, entry);
  }
  yield* visit(root);
}

/** Every location of the tree once, parents before children. */
export function locationsOf(root: Location): Location[] {
  return [...walkTree(root)].filter((e) => e.first).map((e) => e.location);
}

/** The locations that hold values themselves (those without children), each once. */
export function leavesOf(root: Location): Location[] {
  return locationsOf(root).filter(isLeaf);
}

export function isLeaf(location: Location): boolean {
  return (location.children?.().length ?? 0) === 0;
}

/**
 * The digest the tree's lakes record (config.yml `hash:`), if any records one; a ConfigError when two
 * disagree, since one tree holds keys of one digest.
 */
export function recordedDigest(root: Location): Digest | undefined {
  let first: Location | undefined;
  for (const location of locationsOf(root)) {
    if (!location.digest) continue;
    if (!first?.digest) first = location;
    else if (location.digest.name !== first.digest.name) {
      throw new ConfigError(
        `${whereOf(first)} records ${first.digest.name} but ${whereOf(location)} records ${location.digest.name}; the lakes of one tree must agree on the digest`,
      );
    }
  }
  return first?.digest;
}

/** Where a location is, for messages and reports: `disk /srv/lake`, `redis redis://cache:6379`. */
export function whereOf(location: Location): string {
  return `${location.kind} ${location.target}`;
}

/** True when the location hands out leases (it declares `lease`). */
export function canLease(x: unknown): x is Leasing {
  return typeof (x as Partial<Leasing> | null)?.lease === 'function';
}
