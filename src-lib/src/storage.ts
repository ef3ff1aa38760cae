import type { Hash } from 'node:crypto';
import { type Digest, digest, normalizeKey } from './digest.js';
import {
  AbortError,
  ConfigError,
  KeyMismatchError,
  NotFoundError,
  RefusedError,
  raceAbort,
  SourceError,
  StorageCorruption,
  TarnError,
  throwIfAborted,
} from './errors.js';
import type { Location, OpOptions, Stage, Value } from './location/contract.js';
import {
  allReachable,
  type DescribeOptions,
  describeTree,
  type StorageDescription,
} from './location/describe.js';
import { type LocationLike, toLocation } from './location/like.js';
import { recordedDigest } from './location/tree.js';
import { type OpenedSource, openSource, type WriteSource } from './source.js';
import { KEEP_VERIFIED, StoredValue } from './stored-value.js';
import { type VerifyOptions, type VerifyReport, verifyTree } from './verify.js';

export type { VerifyReport } from './verify.js';

/** How many corrupt copies one read gets past before it gives up (one per level is plenty). */
const MAX_COPIES = 8;

export interface StorageOptions {
  /** A fixed-length node:crypto digest: sha256 (default), sha512, blake2b512, ... */
  algorithm?: string;
}

export interface WriteOptions extends OpOptions {
  /** The key the caller expects; on a mismatch nothing becomes visible and KeyMismatchError is thrown. */
  expectedKey?: string;
  /** Called with the running byte count as the value streams in. */
  onProgress?: (bytes: number) => void;
}

/** What `put` did: the key, the byte count, and whether the value was new here. */
export interface PutResult {
  key: string;
  /** Bytes; undefined only when an unsized stream's value was found stored before it was read. */
  size: number | undefined;
  /** `existed`: the key was already stored, and this write added nothing. */
  status: 'stored' | 'existed';
}

export interface ReadOptions extends OpOptions {
  /** Re-hash the bytes and fail with StorageCorruption (quarantining the blob) if they do not match. */
  verify?: boolean;
}

/**
 * Content-addressed storage: values are written once and read back by the hex digest of their
 * bytes. The digest is computed in the same pass that streams the bytes to the location.
 */
export class HashKeyStorage {
  readonly location: Location;
  readonly digest: Digest;

  /**
   * `location` is a Location, a folder path for a disk lake (created when missing), or an array of
   * those (a Fanout), as in the original tarn.
   */
  constructor(location: LocationLike, options: StorageOptions = {}) {
    this.location = toLocation(location, { algorithm: options.algorithm });
    // Lakes that record their digest (config.yml) must all agree, with each other (recordedDigest
    // says so) and with the storage's, wherever they sit in the tree.
    const recorded = recordedDigest(this.location);
    this.digest =
      options.algorithm !== undefined ? digest(options.algorithm) : (recorded ?? digest('sha256'));
    if (recorded && recorded.name !== this.digest.name) {
      throw new ConfigError(
        `the storage is keyed by ${this.digest.name}, but a lake in it records ${recorded.name} (its config.yml says so: its hash, or levels that only keys of that length fit)`,
        ['algorithm'],
      );
    }
  }

  get algorithm(): string {
    return this.digest.name;
  }

  /**
   * Stores a value and returns its key. `source` is a file path, bytes, a Node Readable, a web
   * ReadableStream or an AsyncIterable of chunks; it is read once, hashed as it streams.
   */
  async write(source: WriteSource, options: WriteOptions = {}): Promise<string> {
    return (await this.put(source, options)).key;
  }

  /**
   * `write`, telling also the value's size and whether this write stored it or found it already
   * stored (the sidecar's `PUT /v1/blobs` answers with this).
   */
  async put(source: WriteSource, options: WriteOptions = {}): Promise<PutResult> {
    const { signal } = options;
    throwIfAborted(signal);
    const expected =
      options.expectedKey === undefined ? undefined : normalizeKey(options.expectedKey, this.digest);
    // A file the location can read itself (a sidecar on a shared volume) never crosses the socket.
    if (typeof source === 'string' && this.location.ingest) {
      const ingested = await this.location.ingest(source, { digest: this.digest, key: expected, signal });
      if (ingested) {
        const key = normalizeKey(ingested.key, this.digest);
        if (expected !== undefined && key !== expected) throw new KeyMismatchError(expected, key);
        options.onProgress?.(ingested.size);
        return { key, size: ingested.size, status: ingested.status };
      }
    }
    const src = await openSource(source, signal);
    let stage: Stage | null = null;
    // Set when a RefusedError takes over the unread rest of the source, to replay it to the caller.
    let handedOver = false;
    try {
      // Bytes already in memory are hashed first: then the key is known before anything is written.
      const known = src.whole ? this.digest.of(src.whole) : expected;
      if (src.whole && expected !== undefined && known !== expected)
        throw new KeyMismatchError(expected, known as string);
      stage = await this.location.stage({ size: src.size, key: known, digest: this.digest, signal });
      if (!stage) {
        const stored = await this.#storedAnyway(src, {
          key: src.whole ? known : undefined,
          hash: src.whole ? undefined : this.digest.create(),
          expected,
          signal,
        });
        if (stored !== undefined) return { key: stored, size: src.size, status: 'existed' };
        handedOver = !src.replayable;
        throw await this.#refused(null, src, this.#refusal(src.size));
      }

      const h = src.whole ? undefined : this.digest.create();
      let refusedMidway = false;
      let done = 0;
      if (src.whole) {
        // One chunk, already hashed: no need to go through the source's iterator.
        done = src.whole.byteLength;
        options.onProgress?.(done);
        refusedMidway = !(await stage.push(src.whole));
      } else {
        for (;;) {
          const next = await this.#next(src, signal);
          if (next.done) break;
          h?.update(next.value);
          done += next.value.byteLength;
          options.onProgress?.(done);
          if (!(await stage.push(next.value))) {
            refusedMidway = true;
            break;
          }
        }
      }
      if (refusedMidway) {
        const stored = await this.#storedAnyway(src, {
          key: h ? undefined : known,
          hash: h,
          expected,
          signal,
        });
        if (stored !== undefined) {
          await stage.abort();
          stage = null;
          return { key: stored, size: src.size ?? done, status: 'existed' };
        }
        handedOver = !src.replayable;
        throw await this.#refused(stage, src, 'a location limit was reached while writing');
      }
      const key = h ? h.digest('hex') : (known as string);
      if (expected !== undefined && key !== expected) throw new KeyMismatchError(expected, key);
      const result = await stage.commit(key);
      if (result.status === 'refused') {
        if ((await this.#storedAnyway(src, { key, signal })) !== undefined) {
          await stage.abort();
          stage = null;
          return { key, size: done, status: 'existed' };
        }
        handedOver = !src.replayable;
        throw await this.#refused(stage, src, result.reason);
      }
      stage = null;
      return { key, size: done, status: result.status };
    } catch (e) {
      if (stage && !(e instanceof RefusedError)) await stage.abort();
      if (signal?.aborted && !(e instanceof AbortError)) throw new AbortError(signal.reason);
      throw e;
    } finally {
      if (!handedOver) await src.close();
    }
  }

  /** The source's next chunk; its failures are SourceErrors, an abort an AbortError. */
  async #next(src: OpenedSource, signal: AbortSignal | undefined): Promise<IteratorResult<Uint8Array>> {
    let next: IteratorResult<Uint8Array>;
    try {
      next = await raceAbort(src.chunks.next(), signal);
    } catch (e) {
      if (e instanceof TarnError) throw e;
      throw new SourceError(`reading the source failed: ${(e as Error).message}`, { cause: e });
    }
    throwIfAborted(signal);
    return next;
  }

  /**
   * The location refused the value (full, at its cap): a value that is already stored is no refusal,
   * whatever the free space. Its key is `key` when known; for a file it is learnt by hashing the rest
   * of it into `hash` (which has seen every byte so far): a read, not a second write. A stream's key
   * cannot be learnt without holding the rest of it: locations that can (the disk) hold a stream
   * past their limit themselves and answer `existed` at commit. Answers the key when it is stored.
   */
  async #storedAnyway(
    src: OpenedSource,
    probe: { key?: string; hash?: Hash; expected?: string; signal?: AbortSignal },
  ): Promise<string | undefined> {
    let key = probe.key;
    if (key === undefined && probe.hash && src.replayable) {
      for (;;) {
        const next = await this.#next(src, probe.signal);
        if (next.done) break;
        probe.hash.update(next.value);
      }
      key = probe.hash.digest('hex');
    }
    if (key === undefined || (probe.expected !== undefined && key !== probe.expected)) return undefined;
    // A location that cannot answer is taken not to hold it: the refusal stands, nothing is lost.
    const stored = await this.location.contains(key, { signal: probe.signal }).catch(() => false);
    return stored ? key : undefined;
  }

  #refusal(size: number | undefined): string {
    return `${this.location.kind} ${this.location.target} refused${size === undefined ? '' : ` ${size} bytes`}`;
  }

  /**
   * Builds the RefusedError. A path or buffer can simply be offered again, so its staged bytes are
   * dropped; a stream cannot, so the error replays what the stage took, then the unread rest.
   */
  async #refused(stage: Stage | null, src: OpenedSource, reason: string): Promise<RefusedError> {
    if (src.replayable) {
      await stage?.abort();
      return new RefusedError(reason);
    }
    const replay = async function* () {
      try {
        if (stage) yield* stage.reclaim();
        for (;;) {
          const next = await src.chunks.next();
          if (next.done) return;
          yield next.value;
        }
      } finally {
        await src.close();
      }
    };
    const discard = async () => {
      await stage?.abort();
      await src.close();
    };
    return new RefusedError(reason, { replay, discard });
  }

  /** Opens a stored value. Throws NotFoundError when it is missing. */
  async read(key: string, options?: ReadOptions & { missing?: 'error' }): Promise<StoredValue>;
  /** With `missing: 'null'`, a missing key gives null (same as `readOrNull`). */
  async read(key: string, options: ReadOptions & { missing: 'null' }): Promise<StoredValue | null>;
  /** Calls `fn` with the value and closes it afterwards; returns what `fn` returns. */
  async read<T>(key: string, fn: (value: StoredValue) => Promise<T> | T, options?: ReadOptions): Promise<T>;
  async read<T>(
    key: string,
    fnOrOptions?: ((value: StoredValue) => Promise<T> | T) | (ReadOptions & { missing?: 'error' | 'null' }),
    maybeOptions?: ReadOptions,
  ): Promise<StoredValue | T | null> {
    const fn = typeof fnOrOptions === 'function' ? fnOrOptions : undefined;
    const options = (typeof fnOrOptions === 'function' ? maybeOptions : fnOrOptions) ?? {};
    const value = await this.readOrNull(key, options);
    if (!value) {
      if (!fn && (options as { missing?: string }).missing === 'null') return null;
      throw new NotFoundError(normalizeKey(key, this.digest));
    }
    if (!fn) return value;
    try {
      return await fn(value);
    } finally {
      await value.close();
    }
  }

  /** Like `read`, but a missing key gives null. */
  async readOrNull(key: string, options: ReadOptions = {}): Promise<StoredValue | null> {
    const k = normalizeKey(key, this.digest);
    // A corrupt copy found now is taken out of service; a tree may still hold a good copy (a lower
    // level, another member), so look again, as long as each look finds a different copy.
    let corruption: StorageCorruption | undefined;
    for (let attempt = 0; attempt < MAX_COPIES; attempt++) {
      const raw = await this.location.read(k, { signal: options.signal, digest: this.digest });
      if (!raw) {
        if (corruption) throw corruption;
        return null;
      }
      const value = new StoredValue(k, raw, this.digest, options.verify ?? false, (actual) =>
        this.#corrupt(k, actual, raw),
      );
      // Small local values are checked now and kept in memory: one read serves both the check and bytes().
      // Larger ones are hashed as they stream (one pass); their path waits for verify().
      if (!options.verify || raw.path === undefined || (raw.size ?? Number.POSITIVE_INFINITY) > KEEP_VERIFIED)
        return value;
      try {
        await value.verify({ signal: options.signal });
        return value;
      } catch (e) {
        await value.close();
        if (!(e instanceof StorageCorruption)) throw e;
        // A copy that could not be moved aside would be found again: no other copy is reachable.
        if (e.notMoved !== undefined) throw e;
        corruption = e;
      }
    }
    throw corruption;
  }

  async #corrupt(key: string, actual: string | undefined, raw?: Value): Promise<StorageCorruption> {
    let to: string | undefined;
    let notMoved: string | undefined;
    try {
      if (raw?.quarantine) to = await raw.quarantine();
      else if (this.location.quarantine) to = await this.location.quarantine(key);
      else await this.location.delete(key);
    } catch (e) {
      // The corruption is the news; failing to move the blob aside (a lake this user may only read)
      // is said in the same error, so that verification goes on with the other blobs.
      if (e instanceof AbortError) throw e;
      notMoved = (e as Error).message;
    }
    return new StorageCorruption(key, actual, `${this.location.kind} ${this.location.target}`, to, notMoved);
  }

  async contains(key: string, options?: OpOptions): Promise<boolean> {
    return this.location.contains(normalizeKey(key, this.digest), options);
  }

  /** True when the key was stored and is now removed. */
  async delete(key: string, options?: OpOptions): Promise<boolean> {
    return this.location.delete(normalizeKey(key, this.digest), options);
  }

  /** Every stored key of this storage's digest. */
  async *keys(options?: OpOptions): AsyncIterable<string> {
    for await (const key of this.location.keys(options)) {
      if (key.length === this.digest.hexLength) yield key;
    }
  }

  async touch(key: string, options?: OpOptions): Promise<boolean> {
    return this.location.touch(normalizeKey(key, this.digest), options);
  }

  /**
   * Makes sure the keys are readable, copying them into upper levels of a Levels tree on the way
   * (copy-on-read). Yields each key with whether it was found.
   */
  async *fetch(
    keys: Iterable<string> | AsyncIterable<string>,
    options?: OpOptions,
  ): AsyncIterable<{ key: string; present: boolean }> {
    for await (const key of keys) {
      throwIfAborted(options?.signal);
      const value = await this.readOrNull(key, options);
      await value?.close();
      yield { key: normalizeKey(key, this.digest), present: value !== null };
    }
  }

  /**
   * Re-hashes every copy in every lake of the tree (each lake read directly: nothing is copied
   * between levels or touched); corrupt copies are quarantined in their own lake and reported
   * with where they were. Then runs every location's housekeeping (stale temp files, size
   * accounting). A lake that cannot be read is reported in `failed`; the others are verified.
   */
  verify(options: VerifyOptions = {}): Promise<VerifyReport> {
    return verifyTree(this.location, this.digest, options);
  }

  /** The location tree as plain JSON, every leaf probed unless `probe: false` (see `describeTree`). */
  async describe(options: Omit<DescribeOptions, 'digest'> = {}): Promise<StorageDescription> {
    const location = await describeTree(this.location, { ...options, digest: this.digest });
    return { algorithm: this.algorithm, reachable: allReachable(location), location };
  }

  async close(): Promise<void> {
    await this.location.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
