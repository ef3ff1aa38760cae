import type { z } from 'zod';
import { ConfigError } from '../errors.js';

type Key = string | number;
type Issue = z.core.$ZodIssue;

/** Turns a zod failure into a ConfigError naming the first bad field's path. */
export function configErrorFrom(error: z.ZodError, where: string): ConfigError {
  const first = error.issues[0];
  const { issue, path } = first ? deepest(first, keys(first.path)) : { issue: first, path: [] };
  const more = error.issues.length > 1 ? ` (and ${error.issues.length - 1} more problems)` : '';
  return new ConfigError(`${issue?.message ?? 'invalid'} in ${where}${more}`, path, { cause: error });
}

const keys = (path: ReadonlyArray<PropertyKey>): Key[] =>
  path.map((p) => (typeof p === 'symbol' ? String(p) : p));

/**
 * A union's own issue only says "invalid input"; the useful one is inside the branch the input was
 * meant for. That is the branch whose shape it fits best: the type matches, and the fewest keys are
 * unknown or missing. Its first issue is reported, with its full path (union issues' paths are
 * relative to the union).
 */
function deepest(issue: Issue, path: Key[]): { issue: Issue; path: Key[] } {
  if (issue.code !== 'invalid_union' || issue.errors.length === 0) return { issue, path };
  let best: Issue[] | undefined;
  let bestScore = Number.POSITIVE_INFINITY;
  for (const branch of issue.errors) {
    const score = mismatch(branch);
    if (score < bestScore) {
      best = branch;
      bestScore = score;
    }
  }
  const inner = best?.[0];
  if (!inner) return { issue, path };
  return deepest(inner, [...path, ...keys(inner.path)]);
}

/** How badly a union branch fits: Infinity for the wrong type, else the count of unknown and missing keys. */
function mismatch(issues: Issue[]): number {
  let n = 0;
  for (const i of issues) {
    if (i.path.length === 0) {
      if (i.code === 'invalid_type') return Number.POSITIVE_INFINITY;
      if (i.code === 'unrecognized_keys') n += i.keys.length;
      else if (i.code === 'invalid_union') n += Math.min(...i.errors.map(mismatch));
    } else if (i.path.length === 1) {
      // A required field that is absent (zod reports the input only with reportInput).
      if (i.code === 'invalid_type' && 'input' in i && i.input === undefined) n++;
      // A discriminator that names no option: the object is not of this union.
      else if (i.code === 'invalid_union' && i.errors.length === 0) n++;
    }
  }
  return n;
}
