import type { Digest } from '@tarnjs/tarn';

/** The `serve.hotCache` settings, every default applied. */
export interface HotCacheSettings {
  /** Bytes of values kept (entries count their bytes plus ENTRY_OVERHEAD); 0: no cache. */
  size: number;
  /** Largest value kept. */
  valueLimit: number;
  /** A kept value is answered from memory for this long after the tree gave it (then read again). */
  maxAgeMs: number;
}

/** What a kept entry costs besides its bytes: the Map slot, the entry object, the Buffer, the key string. */
const ENTRY_OVERHEAD = 256;

interface Entry {
  bytes: Buffer;
  /** When the tree last gave these bytes (performance.now()). */
  at: number;
  /** Read since it was kept or last passed over by eviction. */
  used: boolean;
}

/** Counters read by the metrics at scrape time (plain numbers: a hit must cost no label hashing). */
export interface HotCacheStats {
  hits: number;
  misses: number;
  /** Entries found older than maxAgeMs (read from the tree again). */
  expired: number;
  evictions: number;
}

/**
 * Small values this sidecar served or stored recently, answered from memory: a GET of a hot 1 KiB
 * value then costs no syscall, where the lake's safe read is five (open, fstat, the /proc check,
 * read, close: most of a GET's time after HTTP itself).
 *
 * Safe because a key names its bytes forever: an entry can never be stale in content, and every
 * entry is checked against its key when it is kept (a corrupt blob on disk is not copied into
 * memory; `?verify=1` can be answered from here). What an entry can miss is a delete: one made
 * through this sidecar removes it at once; one made by another process (a second sidecar on a shared
 * hostPath, `tarn verify` quarantining a blob) shows after at most `maxAgeMs`, when the entry is
 * read from the tree again. Once `size` is reached, entries not read since eviction last passed
 * them go first (CLOCK, close to least recently used). One cache per tree: a reload that swaps the
 * tree starts with an empty one, so values of a tree that is no longer served are never answered.
 */
export class HotCache {
  readonly stats: HotCacheStats = { hits: 0, misses: 0, expired: 0, evictions: 0 };
  readonly #settings: HotCacheSettings;
  readonly #digest: Digest;
  /** In insertion order (a Map's), which eviction walks from the front; a hit only marks its entry. */
  readonly #entries = new Map<string, Entry>();
  #bytes = 0;

  constructor(settings: HotCacheSettings, digest: Digest) {
    this.#settings = settings;
    this.#digest = digest;
  }

  /** Bytes held, overhead included. */
  get bytes(): number {
    return this.#bytes;
  }

  get entries(): number {
    return this.#entries.size;
  }

  /** The bytes of `key` when kept and fresh; undefined sends the request to the tree. */
  get(key: string): Buffer | undefined {
    const entry = this.#entries.get(key);
    if (entry === undefined) {
      this.stats.misses++;
      return undefined;
    }
    if (performance.now() - entry.at > this.#settings.maxAgeMs) {
      // Asked of the tree again (deleted meanwhile: a 404, and gone from here too).
      this.#drop(key, entry);
      this.stats.expired++;
      this.stats.misses++;
      return undefined;
    }
    // Marked, not moved: re-inserting into the Map on every hit cost more than the rest of the
    // lookup. Eviction gives a marked entry a second chance (CLOCK), which approximates LRU.
    entry.used = true;
    this.stats.hits++;
    return entry.bytes;
  }

  /**
   * Keeps `bytes` as the value of `key` if they are small enough and really are its value (hashed:
   * ~1 µs for 1 KiB). False when not kept. The bytes are copied when they share a larger buffer, so
   * an entry never pins memory it does not count.
   */
  set(key: string, bytes: Uint8Array): boolean {
    const { size, valueLimit } = this.#settings;
    const cost = bytes.byteLength + ENTRY_OVERHEAD;
    if (bytes.byteLength > valueLimit || cost > size) return false;
    if (this.#digest.of(bytes) !== key) return false;
    // Not Buffer.from: small copies come from Node's shared 8 KiB pool, which one entry would pin.
    const own =
      Buffer.isBuffer(bytes) && bytes.byteOffset === 0 && bytes.buffer.byteLength === bytes.byteLength
        ? bytes
        : Buffer.allocUnsafeSlow(bytes.byteLength);
    if (own !== bytes) own.set(bytes);
    const old = this.#entries.get(key);
    if (old) this.#drop(key, old);
    while (this.#bytes + cost > size) {
      const [oldest, entry] = this.#entries.entries().next().value as [string, Entry];
      this.#entries.delete(oldest);
      if (entry.used) {
        // A second chance: to the back of the line, unmarked.
        entry.used = false;
        this.#entries.set(oldest, entry);
      } else {
        this.#bytes -= entry.bytes.byteLength + ENTRY_OVERHEAD;
        this.stats.evictions++;
      }
    }
    this.#entries.set(key, { bytes: own, at: performance.now(), used: false });
    this.#bytes += cost;
    return true;
  }

  /** Forgets `key` (deleted through this sidecar). */
  delete(key: string): void {
    const entry = this.#entries.get(key);
    if (entry) this.#drop(key, entry);
  }

  clear(): void {
    this.#entries.clear();
    this.#bytes = 0;
  }

  #drop(key: string, entry: Entry): void {
    this.#entries.delete(key);
    this.#bytes -= entry.bytes.byteLength + ENTRY_OVERHEAD;
  }
}

/** The cache of a tree, or none when the settings keep nothing. */
export function hotCacheOf(settings: HotCacheSettings, digest: Digest): HotCache | undefined {
  return settings.size > 0 && settings.valueLimit > 0 ? new HotCache(settings, digest) : undefined;
}
