import { stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { loadConfigFile, openConfig } from '../config/load.js';
import type { StorageConfig } from '../config/schema.js';
import type { Leasing, Location } from '../location/contract.js';
import { DiskLocation } from '../location/disk/index.js';
import { type LocationLike, toLocation } from '../location/like.js';
import { SidecarLocation } from '../location/sidecar/index.js';
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

/**
 * The stores of a cache. Without a target, the environment says where: `TARN_SIDECAR` (the socket
 * of the pod's sidecar: its storage, its memo index, its leases), else `TARN_STORAGE` (a lake or a
 * config file, as the CLI takes it), else the lake `./.tarn`.
 */
export async function openStores(
  target: MemoTarget | undefined,
  index: LocationLike | undefined,
  env: Readonly<Record<string, string | undefined>> = process.env,
): Promise<Stores> {
  let storage: HashKeyStorage;
  let defaultIndex: (() => Location | undefined) | undefined;
  if (target === undefined) {
    const fromEnv = await storesFromEnv(env);
    storage = fromEnv.storage;
    index ??= fromEnv.index;
  } else if (typeof target === 'string') {
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

/** The storage (and index, when it brings one) the environment names; see openStores. */
async function storesFromEnv(
  env: Readonly<Record<string, string | undefined>>,
): Promise<{ storage: HashKeyStorage; index: Location | undefined }> {
  const socket = env.TARN_SIDECAR;
  if (socket) {
    const sidecar = new SidecarLocation(socket);
    return { storage: new HashKeyStorage(sidecar), index: sidecar.memoIndex() };
  }
  const spec = env.TARN_STORAGE || './.tarn';
  const st = await stat(spec).catch(() => undefined);
  if (st?.isFile()) {
    const built = openConfig(await loadConfigFile(spec), { base: dirname(resolve(spec)) });
    return { storage: built.storage, index: built.memoIndex };
  }
  if (!st && /\.(ya?ml|json)$/i.test(spec))
    throw new MemoError(`the config file ${spec} ($TARN_STORAGE) does not exist`);
  return { storage: new HashKeyStorage(new DiskLocation(spec)), index: undefined };
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
