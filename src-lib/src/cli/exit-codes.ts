import { statusOf } from '../errors.js';

export { UsageError } from '../errors.js';

/** The CLI's exit codes; documented in docs/cli.md. Which error gives which is errors.ts's ERRORS table. */
export const EXIT = {
  ok: 0,
  error: 1,
  usage: 2,
  notFound: 3,
  corrupt: 4,
  refused: 5,
  config: 6,
  mismatch: 7,
  interrupted: 130,
} as const;

export function exitCodeOf(e: unknown): number {
  return statusOf(e).exit;
}
