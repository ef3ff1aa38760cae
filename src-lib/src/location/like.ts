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
