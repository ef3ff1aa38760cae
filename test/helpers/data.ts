import { createHash } from 'node:crypto';

/**
 * Deterministic pseudo-random bytes: the same (seed, size) always gives the same value, so a
 * child process and the test can build identical values without passing them around.
 */
export function pseudoRandom(seed: string, size: number): Buffer {
  const out = Buffer.allocUnsafe(size);
  const block = createHash('sha512').update(seed).digest();
  let state = block;
  for (let at = 0; at < size; at += state.length) {
    state.copy(out, at, 0, Math.min(state.length, size - at));
    state = createHash('sha512').update(state).digest();
  }
  return out;
}

export const sha256 = (data: Uint8Array | string) => createHash('sha256').update(data).digest('hex');

/** A small seeded generator (mulberry32) of numbers in [0, 1): sequences that replay from their seed. */
export function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
