/**
 * Every error the library throws on purpose is a TarnError with a stable `code`,
 * so callers (and the sidecar, which maps them to HTTP statuses) can branch on it
 * without parsing messages.
 */
export class TarnError extends Error {
  readonly code: string = 'TARN_ERROR';
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** A key that is not lowercase hex of the exact length the digest produces. */
export class InvalidKeyError extends TarnError {
  override readonly code = 'TARN_INVALID_KEY';
  constructor(
    readonly key: unknown,
    reason: string,
  ) {
    super(`invalid key ${JSON.stringify(String(key).slice(0, 200))}: ${reason}`);
  }
}

export class ReadError extends TarnError {
  override readonly code: string = 'TARN_READ_ERROR';
}

/** The key is in none of the storage's locations. */
export class NotFoundError extends ReadError {
  override readonly code = 'TARN_NOT_FOUND';
  constructor(readonly key: string) {
    super(`key ${key} is not stored here; check the key, or the storage it was written to`);
  }
}

export class WriteError extends TarnError {
  override readonly code: string = 'TARN_WRITE_ERROR';
}

/**
 * No location accepted the value (full, read-only, or over a size limit).
 * When the value came from a stream, the caller's bytes are not lost: `source()` replays every byte
 * that was read from it, followed by whatever was still unread, once. Call `discard()` instead to
 * release them (a refused stream holds its bytes, in a temp file or in memory, until one of the two).
 */
export class RefusedError extends WriteError {
  override readonly code = 'TARN_REFUSED';
  readonly #held: { replay: () => AsyncIterable<Uint8Array>; discard: () => Promise<void> } | undefined;
  #used = false;
  constructor(
    reason: string,
    held?: { replay: () => AsyncIterable<Uint8Array>; discard: () => Promise<void> },
  ) {
    super(`no location accepted the value (${reason}); free space, raise the limits, or add a location`);
    this.#held = held;
  }

  /** The complete original bytes, once. Undefined when the source can simply be reopened (a path or a buffer). */
  source(): AsyncIterable<Uint8Array> | undefined {
    if (!this.#held) return undefined;
    if (this.#used) throw new SourceError('the refused value was already replayed or discarded');
    this.#used = true;
    return this.#held.replay();
  }

  /** Releases the held bytes without replaying them. */
  async discard(): Promise<void> {
    if (!this.#held || this.#used) return;
    this.#used = true;
    await this.#held.discard();
  }
}

/** The bytes hash to another key than the one the caller promised (`expectedKey`). Nothing was stored. */
export class KeyMismatchError extends WriteError {
  override readonly code = 'TARN_KEY_MISMATCH';
  constructor(
    readonly expected: string,
    readonly actual: string,
  ) {
    super(`the value hashes to ${actual}, not to the expected key ${expected}; nothing was stored`);
  }
}

/** The same key is stored with different bytes, and the stored bytes are intact: a true digest collision. */
export class CollisionError extends WriteError {
  override readonly code = 'TARN_COLLISION';
  constructor(
    readonly key: string,
    detail: string,
  ) {
    super(`collision on key ${key}: ${detail}; the stored value was kept`);
  }
}

/** A stored blob does not hash to its key. It has been moved aside (quarantined) where the location allows it. */
export class StorageCorruption extends ReadError {
  override readonly code = 'TARN_CORRUPTION';
  constructor(
    readonly key: string,
    readonly actual: string | undefined,
    readonly where: string,
    readonly quarantinedTo?: string,
  ) {
    super(
      `stored blob ${key} in ${where} is corrupt${actual ? ` (its bytes hash to ${actual})` : ''}` +
        (quarantinedTo ? `; moved to ${quarantinedTo}` : '') +
        '; write the original value again to repair it',
    );
  }
}

/** A configuration (config.yml of a lake, an option, a config file) is invalid. `path` names the bad field. */
export class ConfigError extends TarnError {
  override readonly code = 'TARN_CONFIG';
  constructor(
    /** What is wrong, without the path (the message is `path: detail`). */
    readonly detail: string,
    readonly path: ReadonlyArray<string | number> = [],
    options?: ErrorOptions,
  ) {
    super(path.length > 0 ? `${path.join('.')}: ${detail}` : detail, options);
  }
}

/**
 * A delete through a combinator (Levels, Fanout) removed the key from some of its locations but
 * failed on others, so a copy may be left there and come back. Every location was tried; `deleted`
 * says where a copy went, `failed` where the delete failed and why. Delete again once those
 * locations are back.
 */
export class PartialDeleteError extends TarnError {
  override readonly code = 'TARN_PARTIAL_DELETE';
  constructor(
    readonly key: string,
    /** Where a copy was deleted (`kind target`, as in other messages). */
    readonly deleted: readonly string[],
    /** Where the delete failed, and why. */
    readonly failed: ReadonlyArray<{ where: string; message: string }>,
    options?: ErrorOptions,
  ) {
    const done = deleted.length > 0 ? `deleted from ${deleted.join(', ')}` : 'deleted nowhere';
    const not = failed.map((f) => `${f.where} (${f.message})`).join(', ');
    super(
      `key ${key} is only partly deleted: ${done}; failed on ${not}; delete it again once ${failed.length > 1 ? 'they are' : 'it is'} back`,
      options,
    );
  }
}

/** The caller's source failed (a stream errored or was too short), so nothing was stored. */
export class SourceError extends WriteError {
  override readonly code = 'TARN_SOURCE';
}

/** Thrown when an AbortSignal fires; carries the signal's reason as `cause`. */
export class AbortError extends TarnError {
  override readonly code = 'TARN_ABORTED';
  constructor(reason?: unknown) {
    super('the operation was aborted', { cause: reason });
  }
}

export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new AbortError(signal.reason);
}

/** Settles with `promise`, or rejects with AbortError as soon as `signal` fires (a source may never yield again). */
export function raceAbort<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return promise;
  if (signal.aborted) {
    promise.catch(() => undefined);
    return Promise.reject(new AbortError(signal.reason));
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new AbortError(signal.reason));
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}
