import type { Location, Value } from '../location.js';
import { Fanout } from './combinators/fanout.js';
import { DiskLocation } from './disk/index.js';

/**
 * What the original tarn accepts wherever a location goes: a Location, a folder path (a disk lake,
 * created when missing), or an array (a Fanout of its elements), nested freely.
 */
export type LocationLike = Location | string | readonly LocationLike[];

export function toLocation(like: LocationLike): Location {
  if (typeof like === 'string') return new DiskLocation(like);
  if (Array.isArray(like)) return new Fanout(...(like as readonly LocationLike[]));
  return like as Location;
}

/** A value handed out by a member, which knows how to take just that copy out of service. */
export function servedBy(value: Value, member: Location, key: string): Value {
  const quarantine = async (): Promise<string | undefined> => {
    if (value.quarantine) return value.quarantine();
    if (member.quarantine) return member.quarantine(key);
    await member.delete(key);
    return undefined;
  };
  const bytes = value.bytes;
  return {
    path: value.path,
    size: value.size,
    stream: (options) => value.stream(options),
    bytes: bytes ? (options) => bytes.call(value, options) : undefined,
    quarantine,
    close: () => value.close(),
  };
}
