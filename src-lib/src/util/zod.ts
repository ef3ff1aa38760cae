import type { z } from 'zod';
import { ConfigError } from '../errors.js';

/** Turns a zod failure into a ConfigError naming the first bad field's path. */
export function configErrorFrom(
  error: z.ZodError,
  where: string,
  prefix: ReadonlyArray<string | number> = [],
): ConfigError {
  const issue = error.issues[0];
  const path = [...prefix, ...(issue?.path ?? []).map((p) => (typeof p === 'symbol' ? String(p) : p))];
  const more = error.issues.length > 1 ? ` (and ${error.issues.length - 1} more problems)` : '';
  return new ConfigError(`${issue?.message ?? 'invalid'} in ${where}${more}`, path, { cause: error });
}
