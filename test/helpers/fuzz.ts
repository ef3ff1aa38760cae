import fc from 'fast-check';

/**
 * Run settings of the property-based tests (fast-check). Each property has its own default number
 * of runs, chosen so that the whole fuzz set stays fast on a 2-core machine; the environment
 * overrides them for deeper runs:
 *
 * - `FC_RUNS=5000`: every property runs 5000 times; `FC_RUNS=x10`: ten times its default.
 * - `FC_SEED=<n>` (and `FC_PATH=<path>`): replay the run a failure printed ("seed: n, path: p").
 *
 * Without FC_SEED the seed is random, so every run of the suite explores new inputs; a failure
 * prints its seed and path, and its minimal counterexample.
 */
export function runs(defaultRuns: number): number {
  const env = process.env.FC_RUNS?.trim();
  if (!env) return defaultRuns;
  const times = /^x(\d+(?:\.\d+)?)$/i.exec(env);
  const n = times ? Math.round(defaultRuns * Number(times[1])) : Number(env);
  if (!Number.isSafeInteger(n) || n < 1)
    throw new Error(`FC_RUNS=${env}: use a count (5000) or a factor (x10)`);
  return n;
}

/** fast-check parameters for a property with `defaultRuns` runs, with the FC_* overrides. */
export function params<T>(defaultRuns: number, extra: fc.Parameters<NoInfer<T>> = {}): fc.Parameters<T> {
  const seed = process.env.FC_SEED?.trim();
  const path = process.env.FC_PATH?.trim();
  return {
    numRuns: runs(defaultRuns),
    ...(seed ? { seed: Number(seed) } : {}),
    ...(seed && path ? { path } : {}),
    ...extra,
  };
}

/** A vitest timeout for a property whose default runs take up to `ms`: scaled with FC_RUNS, never below 60 s. */
export function timeoutFor(defaultRuns: number, ms = 60_000): number {
  return Math.max(60_000, Math.ceil((ms * runs(defaultRuns)) / defaultRuns));
}

/** What `fn` throws (undefined when it returns). */
export function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  return undefined;
}

/** What the promise rejects with (undefined when it fulfils). */
export async function rejected(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (e) {
    return e;
  }
  return undefined;
}

/** Milliseconds `fn` takes, and what it returned or threw. */
export function timed<T>(fn: () => T): { ms: number; value?: T; error?: unknown } {
  const start = performance.now();
  try {
    const value = fn();
    return { ms: performance.now() - start, value };
  } catch (error) {
    return { ms: performance.now() - start, error };
  }
}

/**
 * Strings that untrusted input can hold: ASCII, controls and NUL, path separators, unicode
 * (accents, other scripts, emoji as surrogate pairs), the replacement character, and lone
 * surrogate halves (valid in a JS string and in JSON, not in UTF-8).
 */
export const nastyChar: fc.Arbitrary<string> = fc.oneof(
  { arbitrary: fc.string({ unit: 'binary-ascii', minLength: 1, maxLength: 1 }), weight: 4 },
  { arbitrary: fc.constantFrom('/', '\\', '.', '..', '\0', '\n', ' ', '%', '~', '-', '_'), weight: 2 },
  { arbitrary: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 1 }), weight: 2 },
  {
    arbitrary: fc.constantFrom(
      '\uFFFD',
      '\uD800',
      '\uDBFF',
      '\uDC00',
      '\uDFFF',
      '\u{1F600}',
      '\u0130',
      '\u212A',
      '\u00DF',
    ),
    weight: 1,
  },
);

export const nastyString = (maxLength = 40): fc.Arbitrary<string> =>
  fc.string({ unit: nastyChar, maxLength });
