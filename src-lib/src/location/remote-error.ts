import { AbortError, TarnError } from '../errors.js';

/** A remote location's server was unreachable, refused our credentials, or failed; names the server. */
export class RemoteError extends TarnError {
  override readonly code = 'TARN_REMOTE';
  constructor(
    readonly target: string,
    action: string,
    cause: unknown,
  ) {
    super(`${action} on ${target} failed: ${(cause as Error)?.message ?? String(cause)}`, { cause });
  }
}

/** Wraps a remote failure unless it is already one of ours (InvalidKeyError, AbortError, ...). */
export function remoteError(target: string, action: string, e: unknown, signal?: AbortSignal): Error {
  if (signal?.aborted) return new AbortError(signal.reason);
  if (e instanceof TarnError) return e;
  return new RemoteError(target, action, e);
}
