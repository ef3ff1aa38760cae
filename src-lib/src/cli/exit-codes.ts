import {
  CollisionError,
  ConfigError,
  InvalidKeyError,
  KeyMismatchError,
  NotFoundError,
  RefusedError,
  StorageCorruption,
} from '../errors.js';

/** The CLI's exit codes; documented in docs/cli.md. */
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
  if (e instanceof UsageError || e instanceof InvalidKeyError) return EXIT.usage;
  if (e instanceof NotFoundError) return EXIT.notFound;
  if (e instanceof StorageCorruption) return EXIT.corrupt;
  if (e instanceof RefusedError) return EXIT.refused;
  if (e instanceof ConfigError) return EXIT.config;
  if (e instanceof KeyMismatchError || e instanceof CollisionError) return EXIT.mismatch;
  return EXIT.error;
}

export class UsageError extends Error {
  readonly code = 'TARN_USAGE';
}
