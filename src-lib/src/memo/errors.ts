import { TarnError } from '../errors.js';

/** A function cannot be memoised as asked (unreadable code, a bad option). */
export class MemoError extends TarnError {
  override readonly code: string = 'TARN_MEMO';
}

/** An argument has no canonical encoding, so it cannot be part of a cache key. `path` names it. */
export class CacheKeyError extends MemoError {
  override readonly code = 'TARN_CACHE_KEY';
  constructor(
    readonly path: string,
    reason: string,
  ) {
    super(`${path}: ${reason}`);
  }
}
