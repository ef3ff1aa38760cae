import { join } from 'node:path';
import { openConfig } from '../config/load.js';
import type { StorageConfig } from '../config/schema.js';
import type { Leasing, Location } from '../location/contract.js';
import { DiskLocation } from '../location/disk/index.js';
import { type LocationLike, toLocation } from '../location/like.js';
import { canLease, locationsOf } from '../location/tree.js';
import { HashKeyStorage } from '../storage.js';
import { MemoError } from './errors.js';

/** Where results go: a folder, a storage, a config, or an explicit storage and index. */
export type MemoTarget =
  | string
  | HashKeyStorage
  | StorageConfig
  | { storage: HashKeyStorage | LocationLike; index: LocationLike };

/** What a cache needs: the storage of results, the index of calls, and where leases come from. */
export interface Stores {
  storage: HashKeyStorage;
  index: Location;
  leasing: Leasing | undefined;
}

export async function openStores(target: MemoTarget, index: LocationLike | undefined): Promise<Stores> {
  let storage: HashKeyStorage;
  let defaultIndex: (() => Location | undefined) | undefined;
  if (typeof target === 'string') {
    // The layout of Python tarn's smart_cache(path): an index lake and a storage lake side by side.
    storage = new HashKeyStorage(join(target, 'storage'));
    defaultIndex = () => new DiskLocation(join(target, 'index'));
  } else if (target instanceof HashKeyStorage) {
    storage = target;
  } else if ('location' in target) {
    const built = openConfig(target);
    storage = built.storage;
    index ??= built.memoIndex;
  } else {
    storage = target.storage instanceof HashKeyStorage ? target.storage : new HashKeyStorage(target.storage);
    index ??= target.index;
  }
  if (!defaultIndex) {
    const s = storage;
    defaultIndex = () => defaultIndexOf(s);
  }
  const indexLocation = index !== undefined ? toLocation(index) : defaultIndex?.();
  if (!indexLocation) {
    throw new MemoError(
      `a cache on ${storage.location.kind} ${storage.location.target} needs an index location: pass { index }`,
    );
  }
  return { storage, index: indexLocation, leasing: leasingOf(indexLocation, storage.location) };
}

/**
 * The memo index a storage has without being told one: a disk lake's `tools/memo`. Undefined for
 * any other tree (a Levels, a remote): there the index must be named (the config's `memo.index`).
 */
export function defaultIndexOf(storage: HashKeyStorage): Location | undefined {
  return storage.location instanceof DiskLocation
    ? new DiskLocation(join(storage.location.root, 'tools', 'memo'))
    : undefined;
}

/** Where single-flight leases come from: the index's tree first, then the storage's. */
export function leasingOf(index: Location | undefined, storage: Location): Leasing | undefined {
  return (index && findLeasing(index)) ?? findLeasing(storage);
}

/** A location in the tree that hands out leases; Redis first (shared by every pod), then a disk. */
function findLeasing(root: Location): Leasing | undefined {
  const found = locationsOf(root).filter((l): l is Location & Leasing => canLease(l));
  return found.find((l) => l.kind === 'redis') ?? found[0];
}
