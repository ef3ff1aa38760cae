import { createHash, getHashes, type Hash, hash as hashOnce } from 'node:crypto';
import { ConfigError, InvalidKeyError } from './errors.js';

/** A node:crypto digest with a fixed output size, and the validation of keys it produces. */
export interface Digest {
  /** The node:crypto name, e.g. `sha256`, `sha512`, `blake2b512`. */
  readonly name: string;
  /** Key length in hex characters (twice the digest size in bytes). */
  readonly hexLength: number;
  create(): Hash;
  /** Digest of a whole buffer in one call (faster than create/update/digest for small values). */
  of(data: Uint8Array): string;
}

// Extendable-output functions have no fixed length, so they cannot name blobs.
const VARIABLE_LENGTH = new Set(['shake128', 'shake256']);
const cache = new Map<string, Digest>();

export function digest(name = 'sha256'): Digest {
  const known = cache.get(name);
  if (known) return known;
  const normalized = name.toLowerCase();
  if (VARIABLE_LENGTH.has(normalized) || !getHashes().includes(normalized)) {
    throw new ConfigError(
      `unknown or unsupported digest ${JSON.stringify(name)}; use a fixed-length node:crypto digest such as sha256, sha512 or blake2b512`,
      ['algorithm'],
    );
  }
  const hexLength = createHash(normalized).digest('hex').length;
  const made: Digest = {
    name: normalized,
    hexLength,
    create: () => createHash(normalized),
    of: (data) => hashOnce(normalized, data, 'hex'),
  };
  cache.set(name, made);
  return made;
}

const HEX = /^[0-9a-f]+$/;

/** Throws InvalidKeyError unless `key` is lowercase hex of exactly the digest's length. */
function assertKey(key: unknown, d: Digest): asserts key is string {
  assertHexKey(key);
  if (key.length !== d.hexLength) {
    throw new InvalidKeyError(
      key,
      `a ${d.name} key has ${d.hexLength} hex characters, this one has ${key.length}`,
    );
  }
}

/** The digest-agnostic check every location applies: non-empty, even-length lowercase hex. */
export function assertHexKey(key: unknown): asserts key is string {
  if (typeof key !== 'string') throw new InvalidKeyError(key, 'a key is a string of hex digits');
  if (key.length === 0 || key.length % 2 !== 0 || !HEX.test(key)) {
    throw new InvalidKeyError(key, 'a key is an even number of lowercase hex digits [0-9a-f]');
  }
}

/** Accepts upper-case hex from users, then validates. */
export function normalizeKey(key: unknown, d: Digest): string {
  const k = typeof key === 'string' ? key.toLowerCase() : key;
  assertKey(k, d);
  return k;
}

/**
 * Python tarn records a lake's digest as a hashlib name (config.yml `hash:`).
 * These are the ones with a node:crypto equivalent of the same output.
 */
const PY_TO_NODE: Record<string, string> = {
  sha1: 'sha1',
  sha224: 'sha224',
  sha256: 'sha256',
  sha384: 'sha384',
  sha512: 'sha512',
  md5: 'md5',
  sha3_224: 'sha3-224',
  sha3_256: 'sha3-256',
  sha3_384: 'sha3-384',
  sha3_512: 'sha3-512',
  blake2b: 'blake2b512',
  blake2s: 'blake2s256',
};

export function digestFromPython(name: string, kwargs: Record<string, unknown>): Digest {
  // Own entries only: a lake's `hash: constructor` must not find Object.prototype.constructor.
  const nodeName = Object.hasOwn(PY_TO_NODE, name) ? PY_TO_NODE[name] : undefined;
  const extra = Object.keys(kwargs);
  const defaultSize =
    (name === 'blake2b' && (kwargs.digest_size === undefined || kwargs.digest_size === 64)) ||
    (name === 'blake2s' && (kwargs.digest_size === undefined || kwargs.digest_size === 32));
  if (!nodeName || (extra.length > 0 && !(defaultSize && extra.every((k) => k === 'digest_size')))) {
    throw new ConfigError(
      `the lake's hash ${JSON.stringify({ name, ...kwargs })} has no node:crypto equivalent`,
      ['hash'],
    );
  }
  return digest(nodeName);
}

export function digestToPython(d: Digest): string | undefined {
  for (const [py, node] of Object.entries(PY_TO_NODE)) if (node === d.name) return py;
  return undefined;
}
