import type { Readable } from 'node:stream';
import type { Digest } from '../digest.js';

/**
 * The contract every storage location implements: a disk folder, S3, Redis, an SSH host,
 * and the combinators (Fanout, Levels, Small), which are locations over locations.
 *
 * Keys are lowercase hex digests. A location trusts that a key names its bytes (the
 * HashKeyStorage facade hashes everything it writes), but validates every key's form,
 * so a key can never address anything outside the location.
 *
 * Everything is asynchronous and byte-streamed, so a location can also live in another
 * process behind a socket (the sidecar) without changing its callers.
 */
export interface Location {
  /** Short kind name for messages and `tarn describe`, e.g. `disk`. */
  readonly kind: string;
  /** Where it is, for messages: a folder, a URL, `host:path`. */
  readonly target: string;

  /** The value, or null when this location does not have the key. */
  read(key: string, options?: ReadOpOptions): Promise<Value | null>;

  /**
   * Begin writing a value whose key may not be known yet (it is being hashed as the bytes flow).
   * Null means the location refuses up front (full, read-only, value too large).
   */
  stage(options?: StageOptions): Promise<Stage | null>;

  contains(key: string, options?: OpOptions): Promise<boolean>;
  /** True when something was deleted. */
  delete(key: string, options?: OpOptions): Promise<boolean>;
  /** Every stored key, each once, in no particular order. */
  keys(options?: OpOptions): AsyncIterable<string>;
  /** Record a use of the key (for LRU policies). True when the key is here. */
  touch(key: string, options?: OpOptions): Promise<boolean>;
  /**
   * Take a corrupt blob out of service without destroying it, where the location can;
   * returns where it went, or undefined if it was only removed or not found.
   */
  quarantine?(key: string, options?: OpOptions): Promise<string | undefined>;
  /** Release connections and handles. Safe to call twice. */
  close(): Promise<void>;

  // Optional capabilities. A location declares what it has; the library never guesses from an
  // object's shape. Each is read by the one walk of the tree (location/tree.ts), once, when a
  // storage is built or verified or described, never per operation.

  /**
   * The locations this one is made of and how it uses each (a combinator). A location with
   * children stores nothing of its own: its values are its children's. Absent or empty: a leaf.
   * Fixed at construction.
   */
  children?(): readonly Child[];
  /** The digest the location records for its keys (a lake's config.yml `hash:`), if it records one. */
  readonly digest?: Digest;
  /**
   * Housekeeping of this location alone, not of its children: stale temp files removed, accounting
   * rebuilt. Returns what it did, as plain JSON (for `verify`'s report).
   */
  sweep?(options?: OpOptions): Promise<Housekeeping>;
  /** The lease named `name` (lowercase hex), or null when someone else holds it. */
  lease?(name: string, ttlMs: number, options?: OpOptions): Promise<Lease | null>;
  /**
   * The location's own settings, as plain JSON, for `describe`: a disk's layout and caps, Small's
   * limit. Not its target (always described) nor its children (described through `children()`).
   */
  describe?(): Flags;
  /**
   * Entries where values belong that are not values (a link, a FIFO, a device node…), for `verify`
   * to report. They are never followed, read or counted as keys.
   */
  foreign?(options?: OpOptions): AsyncIterable<ForeignEntry>;
  /**
   * Store the file at `path` by reading it on the location's side (a sidecar that sees the
   * caller's shared volume), so its bytes never cross a socket; or by cloning it (a disk lake on a
   * filesystem with reflinks), so they are never written again. The location hashes it with
   * `options.digest` (and refuses when it cannot). Null: this file cannot be ingested here (not
   * visible there, not allowed, too small to be worth it); the caller then writes it as a stream.
   * Read by HashKeyStorage.write of a path, at the root of a tree, and by Levels' copy-on-read of a
   * large value that is a local file, on each level above it.
   */
  ingest?(path: string, options: IngestOptions): Promise<IngestResult | null>;
}

export interface IngestOptions extends OpOptions {
  /** The digest the caller keys with; a location keyed otherwise refuses the ingest. */
  digest: Digest;
  /** The key the file must hash to (KeyMismatchError, nothing stored, otherwise). */
  key?: string;
}

/** What an ingest stored: the file's key, its byte count, and whether it was new. */
export interface IngestResult {
  readonly key: string;
  readonly size: number;
  readonly status: 'stored' | 'existed';
}

/** A location inside a combinator, and what the combinator does with it. */
export interface Child {
  readonly location: Location;
  readonly use: ChildUse;
}

/** How a combinator uses a child: plain JSON, shown by `describe`. */
export type ChildUse =
  /** A level of a Levels hierarchy (index 0 is the top), with what the hierarchy may do with it. */
  | {
      readonly as: 'level';
      readonly index: number;
      readonly write: boolean;
      readonly replicate: boolean;
      readonly touch: boolean;
      readonly name?: string;
      readonly timeoutMs?: number;
    }
  /** A member of a Fanout, in the order reads and writes try them. */
  | { readonly as: 'member'; readonly index: number }
  /** The one location a wrapper (Small) hands everything to. */
  | { readonly as: 'inner' };

/** Plain JSON: what a location reports about itself travels as is (the sidecar's `/v1/describe`). */
export type Json = string | number | boolean | null | readonly Json[] | { readonly [key: string]: Json };
export type Flags = { readonly [name: string]: Json };
/** What a location's housekeeping did, e.g. `{ tempFilesRemoved: 2 }`. */
export type Housekeeping = { readonly [what: string]: unknown };

/**
 * A lock with an expiry, held by one process across a machine or a cluster, e.g. so that one
 * process computes a memoised result while the others wait for it. A holder that dies loses the
 * lease when it expires; a live holder keeps it by renewing.
 */
export interface Lease {
  /** Extends the expiry; false when the lease was lost (expired and taken by another holder). */
  renew(): Promise<boolean>;
  /** Gives the lease up, if it is still ours. */
  release(): Promise<void>;
}

/** A location that hands out leases (a disk lake: lock files; Redis: keys with an expiry). */
export type Leasing = Required<Pick<Location, 'lease'>>;

/**
 * What the original tarn accepts wherever a location goes: a Location, a folder path (a disk lake,
 * created when missing), or an array (a Fanout of its elements), nested freely. `toLocation`
 * (like.ts) turns one into a Location.
 */
export type LocationLike = Location | string | readonly LocationLike[];

export interface OpOptions {
  signal?: AbortSignal;
}

export interface ReadOpOptions extends OpOptions {
  /**
   * The digest the caller checks keys with. Lets a combinator verify bytes it copies between
   * locations (Levels' copy-on-read) before they are published under the key. `null`: keys do not
   * name their bytes here (a memo index), so copies are not checked.
   */
  digest?: Digest | null;
  /** False: this read is housekeeping (verification), not a use; locations that track use skip it. */
  touch?: boolean;
}

export interface StageOptions extends OpOptions {
  /** Exact byte count, when the caller knows it: lets a location refuse before any byte moves. */
  size?: number;
  /** The key, when known in advance (copy-on-read, `expectedKey`); commit must then use the same key. */
  key?: string;
  /** The digest the caller hashes with; lets a location tell a corrupt stored blob from a true collision. */
  digest?: Digest;
}

/**
 * A write in progress. The caller pushes chunks, then commits under the key it computed.
 *
 * Refusal never loses the caller's bytes: once `push` answers false or `commit` answers
 * `refused`, `reclaim()` replays every byte pushed so far (including the chunk that was refused),
 * so a combinator can offer the same value to the next location.
 */
export interface Stage {
  /**
   * Accept a chunk. False: refused (e.g. a size limit was crossed); stop pushing and reclaim. The
   * chunk is the stage's from then on: it may still be queued for the network when push resolves
   * (a sidecar's upload), so the caller must not change or reuse its memory. A disk stage hands a
   * chunk it has written back to the chunk's reader for reuse (util/recycle.ts): a stage that passes
   * chunks on to another stage while its source is still being read must not keep them, and one
   * that passes a chunk to several must `pin` it.
   */
  push(chunk: Uint8Array): Promise<boolean>;
  /** Publish the bytes under `key`, atomically: readers see all of the value or none of it. */
  commit(key: string): Promise<CommitResult>;
  /**
   * After a refusal: the pushed bytes, once. Releases the stage's resources when consumed.
   * A stage may also hand its bytes back after a commit that threw, or instead of a commit (a
   * combinator found the location unreachable and moves the value on); one that cannot throws
   * WriteError before yielding anything and is left as it was.
   */
  reclaim(): AsyncIterable<Uint8Array>;
  /** Drop the staged bytes. Safe to call after commit or twice. */
  abort(): Promise<void>;
}

export type CommitResult =
  | { status: 'stored' }
  /** The key was already stored (this write added nothing). */
  | { status: 'existed' }
  | { status: 'refused'; reason: string };

/** A stored value as a location hands it out. Valid until `close()`. */
export interface Value {
  /** A local file holding exactly the value's bytes, when there is one. Read-only. */
  readonly path?: string;
  /** Byte count, when known without reading. */
  readonly size?: number;
  /** The bytes as a stream; may be called more than once. */
  stream(options?: OpOptions): Readable;
  /**
   * Bytes `start` to `end` (inclusive), when the location can read them without the bytes before
   * them (a file seeks). Absent: the caller skips through `stream()`.
   */
  range?(start: number, end: number, options?: OpOptions): Readable;
  /** The whole value in one piece, when the location can do that better than draining `stream()`. */
  bytes?(options?: OpOptions): Promise<Buffer>;
  /**
   * The hex digest of the whole value, when the location can hash it better than a consumer of
   * `stream()` (a file is read into the same few buffers again and again: util/hash-file.ts).
   */
  hash?(digest: Digest, options?: OpOptions): Promise<string>;
  /**
   * Take exactly this copy out of service after it was found corrupt (a combinator knows which of
   * its members served it). Absent: the caller quarantines the key in the whole location.
   */
  quarantine?(): Promise<string | undefined>;
  close(): Promise<void>;
}

/** What can sit where a lake expects a blob or a folder without being one. */
export type ForeignReason = 'symlink' | 'fifo' | 'socket' | 'device' | 'file' | 'folder';

/** An entry of a lake that is no value (see `Location.foreign`). */
export interface ForeignEntry {
  /** The entry's absolute path (on the host that holds the lake). */
  path: string;
  /**
   * What it is: a symbolic link, a FIFO, a socket, a device node; a regular `file` where a folder
   * belongs; or a `folder` at a blob's position without a regular `data` file in it.
   */
  reason: ForeignReason;
}
