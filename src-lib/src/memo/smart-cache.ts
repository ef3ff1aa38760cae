import { createHash } from 'node:crypto';
import { CollisionError, NotFoundError, StorageCorruption } from '../errors.js';
import type { Lease } from '../location/contract.js';
import type { LocationLike } from '../location/like.js';
import { Lazy } from '../util/lazy.js';
import { sleep } from '../util/process.js';
import { encodeInto } from './encode.js';
import { MemoError } from './errors.js';
import { readIndexEntry, writeIndexEntry } from './index-entry.js';
import { callerModule, dependencies } from './registry.js';
import { type Serializer, serializerOf, unserialisable } from './serializers.js';
import { readFunction } from './source.js';
import { type MemoTarget, openStores, type Stores } from './stores.js';

// biome-ignore lint/suspicious/noExplicitAny: a cached function keeps whatever signature it had
type AnyFunction = (...args: any[]) => unknown;

export interface SmartCacheOptions {
  /** Bump to invalidate by hand (a change the code does not show: new data, a fixed bug elsewhere). */
  version?: string | number;
  /** Computes what identifies a call instead of the arguments (e.g. `(req) => req.id`). */
  key?: (...args: never[]) => unknown;
  /** Functions whose code belongs to the key, besides the marked ones found in the source. */
  deps?: AnyFunction[];
  /** `v8` (default, lossless structured clone), `json`, or your own. */
  serializer?: 'v8' | 'json' | Serializer;
  /** Where call keys map to value keys (default: `<folder>/index`, or `tools/memo` in a disk lake). */
  index?: LocationLike;
  /**
   * Compute identical concurrent calls once across processes too, with a lease from the index (a
   * Redis key when the index tree has Redis, else a lock file in a disk lake). Default on; the
   * lease expires `ttlMs` (default 30 s) after its holder stops renewing it (e.g. it crashed).
   */
  lock?: boolean | { ttlMs?: number };
}

export interface CacheStats {
  /** Calls answered from the storage. */
  hits: number;
  /** Calls that ran the function. */
  misses: number;
  /** Calls that joined an identical call already running in this process. */
  joined: number;
  /** Corrupt or dangling index entries and blobs found (each then recomputed and stored again). */
  repaired: number;
  /**
   * Results computed but not stored: the storage refused or was down (the result was still
   * returned), or the serializer could not store it (the call threw a MemoError).
   */
  unstored: number;
  /** Lookups that failed because a server of the index or storage was down (the call computed instead). */
  unavailable: number;
}

export type CachedFunction<F extends AnyFunction> = ((
  ...args: Parameters<F>
) => Promise<Awaited<ReturnType<F>>>) & {
  readonly stats: Readonly<CacheStats>;
  /** The cache key of a call (hex), without calling anything. */
  keyOf(...args: Parameters<F>): Promise<string>;
  /** Forgets a call's result (the next call computes again). True when there was one. */
  forget(...args: Parameters<F>): Promise<boolean>;
};

const ENTRY = 'tarn-memo/1';

/**
 * Memoisation to storage with automatic invalidation:
 * `const area = smartCache('/path/to/cache')(function area(r) { … })`.
 *
 * Without a target (`smartCache()(fn)`), the environment says where: the pod's sidecar when
 * `TARN_SIDECAR` names its socket (its storage, memo index and leases: computed once across every
 * pod sharing its tree), else `TARN_STORAGE` (a lake or a config file, as the CLI), else `./.tarn`.
 *
 * The key of a call hashes the function's code (normalised: formatting and comments do not
 * matter), the code of every marked function (`markUnstable`) it uses, directly or through other
 * marked functions, the `version`, and the arguments in a canonical encoding. Results are stored
 * once per distinct value in a HashKeyStorage; an index maps call keys to value keys.
 */
export function smartCache(target?: MemoTarget, options: SmartCacheOptions = {}) {
  const serializer = serializerOf(options.serializer);
  const ttlMs = typeof options.lock === 'object' ? (options.lock.ttlMs ?? 30_000) : 30_000;
  const locking = options.lock !== false;
  const stores = new Lazy<Stores>();
  const open = () => stores.get(() => openStores(target, options.index));

  return <F extends AnyFunction>(fn: F): CachedFunction<F> => {
    if (typeof fn !== 'function') throw new MemoError('smartCache(...)(fn) takes a function');
    type Result = Awaited<ReturnType<F>>;
    const module = callerModule();
    const name = fn.name || 'the cached function';
    const stats: CacheStats = { hits: 0, misses: 0, joined: 0, repaired: 0, unstored: 0, unavailable: 0 };
    const running = new Map<string, Promise<Result>>();
    // Read when first called, once every module (and every markUnstable) has loaded.
    let code: string | undefined;

    const keyOf = async (args: unknown[]): Promise<string> => {
      code ??= fingerprint(fn, module, options.deps);
      const h = createHash('sha256');
      h.update(`${ENTRY}\0${serializer.name}\0${code}\0`);
      encodeInto(h, options.version ?? null, 'version');
      if (options.key) encodeInto(h, (options.key as AnyFunction)(...args), 'key(...args)');
      else encodeInto(h, args, 'args');
      return h.digest('hex');
    };

    const lookup = async (s: Stores, key: string): Promise<{ value: Result } | null> => {
      let found: Awaited<ReturnType<typeof readEntry>>;
      try {
        found = await readEntry(s, key, serializer);
      } catch (e) {
        // A cache that is down must not take the function down with it: compute, and say so in stats.
        if (!isRemote(e)) throw e;
        stats.unavailable++;
        return null;
      }
      if (found === 'repair') {
        stats.repaired++;
        await s.index.delete(key).catch(() => undefined);
        return null;
      }
      return found && { value: found.value as Result };
    };

    const compute = async (s: Stores, key: string, args: unknown[], lease?: Lease): Promise<Result> => {
      // Renewed while the function runs, so a long computation keeps its lease and a crash loses it.
      const renewal = lease && setInterval(() => void lease.renew().catch(() => false), ttlMs / 3);
      renewal?.unref();
      try {
        stats.misses++;
        const value = (await fn(...args)) as Result;
        const stored = await store(s, key, value, serializer, name).catch((e: unknown) => {
          if (isRemote(e)) return false;
          stats.unstored++;
          throw e;
        });
        if (!stored) stats.unstored++;
        return value;
      } finally {
        if (renewal) clearInterval(renewal);
      }
    };

    const run = async (key: string, args: unknown[]): Promise<Result> => {
      const s = await open();
      const hit = await lookup(s, key);
      if (hit) {
        stats.hits++;
        return hit.value;
      }
      if (!locking || !s.leasing) return compute(s, key, args);
      let wait = 10;
      for (;;) {
        const lease = await s.leasing.lease(key, ttlMs).catch(() => undefined);
        // No lock to be had (its server is down): compute anyway; the result is the same.
        if (lease === undefined) return compute(s, key, args);
        if (lease) {
          try {
            const again = await lookup(s, key);
            if (again) {
              stats.hits++;
              return again.value;
            }
            return await compute(s, key, args, lease);
          } finally {
            await lease.release();
          }
        }
        // Someone else computes it: wait for their result to appear (or their lease to expire).
        await sleep(wait);
        wait = Math.min(wait * 2, 250);
        const theirs = await lookup(s, key);
        if (theirs) {
          stats.hits++;
          return theirs.value;
        }
      }
    };

    const cached = async (...args: Parameters<F>): Promise<Result> => {
      const key = await keyOf(args);
      const current = running.get(key);
      if (current) {
        stats.joined++;
        return current;
      }
      const promise = run(key, args).finally(() => running.delete(key));
      running.set(key, promise);
      return promise;
    };

    return Object.assign(cached, {
      stats,
      keyOf: (...args: Parameters<F>) => keyOf(args),
      forget: async (...args: Parameters<F>) => (await open()).index.delete(await keyOf(args)),
    }) as CachedFunction<F>;
  };
}

function isRemote(e: unknown): boolean {
  return (e as { code?: string } | null)?.code === 'TARN_REMOTE';
}

/** The normalised code of `fn` and of the marked functions it reaches. */
function fingerprint(fn: AnyFunction, module: string | undefined, deps: AnyFunction[] | undefined): string {
  const own = readFunction(fn).normalised;
  const reached = dependencies(fn, module, deps);
  const h = createHash('sha256').update(own);
  for (const d of reached) h.update(`\0${d.name}\0${d.normalised}`);
  return h.digest('hex');
}

/** The stored result of a call; null when there is none; 'repair' when its entry or blob is bad. */
async function readEntry(
  s: Stores,
  key: string,
  serializer: Serializer,
): Promise<{ value: unknown } | null | 'repair'> {
  const stored = await readIndexEntry(s.index, key);
  if (!stored) return null;
  let entry: { tarn?: unknown; value?: unknown; format?: unknown } | null;
  try {
    entry = JSON.parse(stored.toString('utf8'));
  } catch {
    return 'repair';
  }
  // Any JSON parses, `null` too: only an object of the current format is an entry.
  if (
    typeof entry !== 'object' ||
    entry === null ||
    entry.tarn !== ENTRY ||
    typeof entry.value !== 'string' ||
    entry.format !== serializer.name
  )
    return 'repair';
  let bytes: Buffer;
  try {
    bytes = await s.storage.read(entry.value, (v) => v.bytes(), { verify: true });
  } catch (e) {
    if (e instanceof NotFoundError || e instanceof StorageCorruption) return 'repair';
    if ((e as { code?: string }).code === 'TARN_INVALID_KEY') return 'repair';
    throw e;
  }
  try {
    return { value: serializer.deserialize(bytes) };
  } catch {
    return 'repair';
  }
}

/**
 * Stores a result and its index entry; false when the storage would not take it. A result the
 * serializer cannot store is a MemoError, before anything is written: returning it uncached would
 * recompute it at every call without a word.
 */
async function store(
  s: Stores,
  key: string,
  value: unknown,
  serializer: Serializer,
  what: string,
): Promise<boolean> {
  let bytes: Buffer;
  try {
    bytes = serializer.serialize(value);
  } catch (e) {
    throw unserialisable(what, value, serializer, e);
  }
  let valueKey: string;
  try {
    valueKey = await s.storage.write(bytes);
  } catch (e) {
    if ((e as { code?: string }).code === 'TARN_REFUSED') return false;
    throw e;
  }
  const entry = Buffer.from(JSON.stringify({ tarn: ENTRY, value: valueKey, format: serializer.name }));
  try {
    return (await writeIndexEntry(s.index, key, entry)) !== 'refused';
  } catch (e) {
    // Another process stored a different (non-deterministic) result for the call first: theirs stays.
    if (e instanceof CollisionError) return true;
    throw e;
  }
}
