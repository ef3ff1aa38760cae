import { Fanout } from './combinators/fanout.js';
import type { Location, LocationLike } from './contract.js';
import { DiskLocation } from './disk/index.js';

export type { LocationLike } from './contract.js';

/** `algorithm` reaches the disk lakes made from paths, so that new lakes record a non-default digest. */
export function toLocation(like: LocationLike, options: { algorithm?: string } = {}): Location {
  if (typeof like === 'string') return new DiskLocation(like, { algorithm: options.algorithm });
  if (Array.isArray(like))
    return new Fanout(...(like as readonly LocationLike[]).map((l) => toLocation(l, options)));
  return like as Location;
}

/** The locations a combinator is made of (a level's, a member's, Small's inner); none for a leaf. */
export function childrenOf(location: Location): Location[] {
  const node = location as {
    levels?: ReadonlyArray<{ location: Location }>;
    members?: readonly Location[];
    inner?: Location;
  };
  return [
    ...(node.levels ?? []).map((l) => l.location),
    ...(node.members ?? []),
    ...(node.inner ? [node.inner] : []),
  ];
}

/** Every location of a tree, depth first, each once (one disk may sit in two places). */
export function* walkTree(root: Location, seen = new Set<Location>()): Iterable<Location> {
  if (seen.has(root)) return;
  seen.add(root);
  yield root;
  for (const child of childrenOf(root)) yield* walkTree(child, seen);
}
