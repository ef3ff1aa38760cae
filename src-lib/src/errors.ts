import { getSystemErrorMap } from 'node:util';
import { describeValue } from './util/describe.js';

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
    // Keys come from clients: describing one must not throw (`{"toString": 0}`) nor copy a huge one.
    super(`invalid key ${describeValue(key)}: ${reason}`);
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

/**
 * A stored blob does not hash to its key. It has been moved aside (quarantined) where the location
 * allows it; when that failed (a lake the user may only read), `notMoved` says why and the blob stays.
 */
export class StorageCorruption extends ReadError {
  override readonly code = 'TARN_CORRUPTION';
  constructor(
    readonly key: string,
    readonly actual: string | undefined,
    readonly where: string,
    readonly quarantinedTo?: string,
    readonly notMoved?: string,
  ) {
    super(
      `stored blob ${key} in ${where} is corrupt${actual ? ` (its bytes hash to ${actual})` : ''}` +
        (quarantinedTo ? `; moved to ${quarantinedTo}` : '') +
        (notMoved === undefined
          ? '; write the original value again to repair it'
          : `; it could not be moved aside (${notMoved}), so it stays where it is until someone allowed to write there removes it or writes the original value again`),
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

  /**
   * An OS error about a configured path (a lake root below a file, or too long) as a ConfigError,
   * worded as IoError.from words it, with the OS error as its cause. Undefined for anything that is
   * not a system error (rethrow it).
   */
  static fromSystemError(
    e: unknown,
    options: { verb?: string; what?: string; hint?: string } = {},
  ): ConfigError | undefined {
    return isSystemError(e) ? new ConfigError(IoError.from(e, options).message, [], { cause: e }) : undefined;
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

/**
 * The invocation is wrong: an unknown command, a missing argument, a bad flag. The CLI prints its
 * usage after the message; the sidecar answers 400.
 */
export class UsageError extends TarnError {
  override readonly code = 'TARN_USAGE';
}

/**
 * An expected failure of the operating system (a file we may not read, a full disk, a missing
 * folder): not a bug, so the CLI prints one line, no stack. `errno` is the OS's name for it
 * (`EACCES`, `ENOSPC`, …), `path` what it was about when known; the original error is the `cause`.
 */
export class IoError extends TarnError {
  override readonly code = 'TARN_IO';
  readonly errno: string | undefined;
  readonly path: string | undefined;
  constructor(message: string, options: ErrorOptions & { errno?: string; path?: string } = {}) {
    super(message, { cause: options.cause });
    this.errno = options.errno;
    this.path = options.path;
  }

  /**
   * `cannot <verb> <what>: <the OS's reason>; <what to do>`. The verb comes from the system call
   * (`open`, `write to`, …) unless given; `what` defaults to the error's path (Node's write errors
   * carry none: name `stdout` or the target file); `hint` replaces the usual advice for the errno.
   */
  static from(
    e: NodeJS.ErrnoException,
    options: { verb?: string; what?: string; path?: string; hint?: string } = {},
  ): IoError {
    const errno = e.code;
    const reason =
      (typeof e.errno === 'number' ? getSystemErrorMap().get(e.errno)?.[1] : undefined) ??
      e.message.replace(/^[A-Z0-9]+: /, '').replace(/, \w+( '.*)?$/, '');
    const dest = (e as { dest?: unknown }).dest;
    const what = options.what ?? `${e.path ?? 'a file'}${typeof dest === 'string' ? ` to ${dest}` : ''}`;
    const verb = options.verb ?? VERBS[e.syscall ?? ''] ?? e.syscall ?? 'use';
    const advice = options.hint ?? (errno === undefined ? undefined : HINTS[errno]);
    return new IoError(`cannot ${verb} ${what}: ${reason}${advice ? `; ${advice}` : ''}`, {
      cause: e,
      errno,
      path: options.path ?? e.path,
    });
  }
}

/** A Node system error (`fs`, `net`, …): it has the failing system call and the OS's error name. */
export function isSystemError(e: unknown): e is NodeJS.ErrnoException & { code: string; syscall: string } {
  return (
    e instanceof Error &&
    typeof (e as NodeJS.ErrnoException).syscall === 'string' &&
    typeof (e as NodeJS.ErrnoException).code === 'string'
  );
}

const VERBS: Readonly<Record<string, string>> = {
  open: 'open',
  read: 'read',
  write: 'write to',
  mkdir: 'create the folder',
  mkdtemp: 'create a temp folder in',
  rmdir: 'remove',
  rm: 'remove',
  unlink: 'remove',
  rename: 'rename',
  link: 'link',
  copyfile: 'copy',
  scandir: 'list',
  opendir: 'list',
  stat: 'look at',
  lstat: 'look at',
  fstat: 'look at',
  chmod: 'change the mode of',
  fchmod: 'change the mode of',
  utime: 'touch',
  futime: 'touch',
  fsync: 'flush',
  readlink: 'read the link',
  statfs: 'measure the free space of',
};

const HINTS: Readonly<Record<string, string>> = {
  EACCES: 'check the permissions of it and of its folders (ls -ld)',
  EPERM: 'check the permissions of it and of its folders (ls -ld)',
  ENOSPC: 'free some space there',
  EDQUOT: 'free some space there, or raise the quota',
  ENOENT: 'check that it exists',
  ENOTDIR: 'a part of the path is not a folder',
  EISDIR: 'it is a folder; name a file',
  EROFS: 'the filesystem is mounted read-only',
  EMFILE: 'too many open files; raise the limit (ulimit -n)',
  ENFILE: 'too many open files on this machine',
  EIO: 'the device failed; check the disk (dmesg)',
  ENXIO: 'nothing is on the other side (a socket cannot be opened by name; pipe it to `tarn put -`)',
  EPIPE: 'the reader went away before the end',
  ELOOP: 'too many symbolic links',
  ENAMETOOLONG: 'the name is too long',
  EBUSY: 'it is in use',
};

/**
 * The storage cannot do what was asked, as configured: a memo route of a sidecar whose config names
 * no memo index, a lease from a tree without Redis or a disk lake. Not the caller's fault, and no
 * retry helps until the config changes.
 */
export class UnsupportedError extends TarnError {
  override readonly code = 'TARN_UNSUPPORTED';
}

/** The config does not allow the operation (a DELETE through a sidecar whose config forbids it). */
export class ForbiddenError extends TarnError {
  override readonly code = 'TARN_FORBIDDEN';
}

/**
 * The value is stored, but no local lake of the tree holds (or would take) a copy, so there is no
 * file to hand out: read its bytes instead.
 */
export class NoLocalCopyError extends ReadError {
  override readonly code = 'TARN_NO_LOCAL_COPY';
  constructor(
    readonly key: string,
    reason: string,
  ) {
    super(`key ${key} is stored, but there is no local file to hand out (${reason}); read its bytes instead`);
  }
}

/** A lease token that names no lease held here any more (it expired, was released, or never was). */
export class LeaseLostError extends TarnError {
  override readonly code = 'TARN_LEASE_LOST';
}

/**
 * `tarn serve` was asked to listen on a Unix socket that a live server answers on: that server is
 * left alone (its socket is not removed), and this one does not start.
 */
export class SocketInUseError extends TarnError {
  override readonly code = 'TARN_SOCKET_IN_USE';
  constructor(readonly path: string) {
    super(
      `a server is already listening on ${path}; stop it first, or give this one another socket (--socket)`,
    );
  }
}

/**
 * The sidecar's own refusals of a request, each with its HTTP status in ERRORS: a body over the
 * limit, a route that does not exist, a client too slow, a server too busy or shutting down.
 */
export type ServiceCode =
  | 'TARN_TOO_LARGE'
  | 'TARN_NO_ROUTE'
  | 'TARN_BAD_REQUEST'
  | 'TARN_RANGE'
  | 'TARN_TIMEOUT'
  | 'TARN_BUSY'
  | 'TARN_UNAVAILABLE';

export class ServiceError extends TarnError {
  override readonly code: ServiceCode;
  constructor(code: ServiceCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
  }
}

/** How each error code is reported: by the CLI (`exit`) and over HTTP by the sidecar (`http`). */
export interface ErrorRow {
  /** The class that carries the code. */
  readonly error: string;
  /** The `tarn` command's exit status (docs/cli.md). */
  readonly exit: number;
  /** The sidecar's HTTP status. */
  readonly http: number;
  /** When it is thrown (docs/library.md's error table is generated from this). */
  readonly when: string;
}

/**
 * The one table of error codes. Exit statuses are the CLI's documented ones: 0 ok, 1 error, 2 usage
 * or invalid key, 3 not found, 4 corrupt, 5 refused, 6 config, 7 key mismatch or collision, 130
 * interrupted. HTTP statuses are what a REST client expects: 4xx when the request is at fault and
 * retrying it unchanged cannot help, 5xx when the server (its config, its disks, the servers behind
 * it) is. docs/library.md's table is generated from this one (`npm run docs`) and checked by a test.
 */
export const ERRORS = {
  TARN_ERROR: {
    error: 'TarnError',
    exit: 1,
    http: 500,
    when: 'the base class; also any failure without a more precise code',
  },
  TARN_INVALID_KEY: {
    error: 'InvalidKeyError',
    exit: 2,
    http: 400,
    when: 'a key that is not lowercase hex of the digest’s exact length (upper case is accepted and lowered)',
  },
  TARN_USAGE: {
    error: 'UsageError',
    exit: 2,
    http: 400,
    when: 'a bad invocation: unknown command, missing argument, bad flag',
  },
  TARN_READ_ERROR: { error: 'ReadError', exit: 1, http: 500, when: 'the base class of read failures' },
  TARN_NOT_FOUND: { error: 'NotFoundError', exit: 3, http: 404, when: '`read` of a missing key' },
  // The server's own bytes are bad: nothing the client did, so 5xx (4 on the command line).
  TARN_CORRUPTION: {
    error: 'StorageCorruption',
    exit: 4,
    http: 500,
    when: 'stored bytes do not hash to their key; says where the blob was quarantined (`quarantinedTo`), or, when it could not be moved aside, why (`notMoved`)',
  },
  TARN_WRITE_ERROR: { error: 'WriteError', exit: 1, http: 500, when: 'the base class of write failures' },
  // 507 Insufficient Storage (RFC 4918) says exactly this: the server cannot store the representation.
  TARN_REFUSED: {
    error: 'RefusedError',
    exit: 5,
    http: 507,
    when: 'no location accepted the value (full, over a limit; a value already stored is never refused). `source()` replays the caller’s bytes (those already read, then the unread rest), once, when the source was a stream that cannot be reread; `discard()` releases them instead',
  },
  // 422: the body is well-formed, but it is not the content the request said it was.
  TARN_KEY_MISMATCH: {
    error: 'KeyMismatchError',
    exit: 7,
    http: 422,
    when: 'the bytes do not hash to `expectedKey`; nothing was stored',
  },
  // 409: the request conflicts with what the server holds under that key.
  TARN_COLLISION: {
    error: 'CollisionError',
    exit: 7,
    http: 409,
    when: 'the key is stored with different, intact bytes (see [disk.md](disk.md))',
  },
  // Some copies are gone, some are not: a storage behind the server failed (as for TARN_REMOTE), and
  // deleting again finishes the job.
  TARN_PARTIAL_DELETE: {
    error: 'PartialDeleteError',
    exit: 1,
    http: 502,
    when: 'a delete through `Levels` or `Fanout` removed some copies and failed on other locations (every one is tried); `deleted` lists where copies went, `failed` where and why not; deleting again finishes it',
  },
  // The caller's source (an upload, a file named on the command line) failed or changed: the request's fault.
  TARN_SOURCE: {
    error: 'SourceError',
    exit: 1,
    http: 400,
    when: 'the caller’s source failed, changed while it was read (a file truncated or grown), is a closed stdin, or yielded something other than bytes; nothing was stored',
  },
  // A broken config is the operator's, not the client's, problem.
  TARN_CONFIG: {
    error: 'ConfigError',
    exit: 6,
    http: 500,
    when: 'an invalid config or option, or a missing config file; `path` names the bad field (`levels`, `location.root`, …)',
  },
  // 499 (nginx's "client closed request"): the sidecar aborts an operation when its client goes away,
  // so nobody receives the status; it only tells the logs that no server fault ended the request.
  // 130 is the shell's 128 + SIGINT.
  TARN_ABORTED: {
    error: 'AbortError',
    exit: 130,
    http: 499,
    when: 'the `AbortSignal` fired; a write in progress leaves nothing behind',
  },
  // 502 Bad Gateway: a server behind us (Redis, S3, an SSH host, nginx) failed or was unreachable.
  TARN_REMOTE: {
    error: 'RemoteError',
    exit: 1,
    http: 502,
    when: 'a remote location’s server was unreachable, refused the credentials, timed out or failed; names the server',
  },
  TARN_MEMO: {
    error: 'MemoError',
    exit: 1,
    http: 500,
    when: 'a function cannot be memoised as asked (unreadable code, a bad option, a result that cannot be serialised)',
  },
  // The arguments are the request's: an argument without a canonical encoding is a bad request.
  TARN_CACHE_KEY: {
    error: 'CacheKeyError',
    exit: 1,
    http: 400,
    when: 'an argument has no canonical encoding (a function, a symbol, an unknown class); `path` names it',
  },
  // Expected OS failures on the server's side (its disks, its permissions): 500, not a bug, no stack.
  TARN_IO: {
    error: 'IoError',
    exit: 1,
    http: 500,
    when: 'an expected OS error (permission denied, disk full, missing folder); `errno` and `path` say which, the message what to do',
  },
  TARN_UNSUPPORTED: {
    error: 'UnsupportedError',
    exit: 1,
    http: 501,
    when: 'the storage, as configured, cannot do it: memo routes without a memo index, leases without Redis or a disk lake in the tree',
  },
  TARN_FORBIDDEN: {
    error: 'ForbiddenError',
    exit: 1,
    http: 403,
    when: 'the config does not allow it: `DELETE` through a sidecar without `serve.allowDelete`',
  },
  // 409: the value exists, but not in the form asked for (a file the caller can open).
  TARN_NO_LOCAL_COPY: {
    error: 'NoLocalCopyError',
    exit: 1,
    http: 409,
    when: 'a path was asked for (`/v1/blobs/{key}/path`) but no local lake of the tree holds or takes a copy',
  },
  TARN_LEASE_LOST: {
    error: 'LeaseLostError',
    exit: 1,
    http: 409,
    when: 'a lease token to renew or release names no lease held any more (it expired and may be someone else’s)',
  },
  TARN_SOCKET_IN_USE: {
    error: 'SocketInUseError',
    exit: 1,
    http: 500,
    when: '`tarn serve` found a live server on its socket path; that server is left alone',
  },
  TARN_TOO_LARGE: {
    error: 'ServiceError',
    exit: 1,
    http: 413,
    when: 'a request body over the sidecar’s limit (`serve.bodyLimit`); nothing was stored',
  },
  TARN_NO_ROUTE: {
    error: 'ServiceError',
    exit: 1,
    http: 404,
    when: 'no sidecar route has that method and path',
  },
  TARN_BAD_REQUEST: {
    error: 'ServiceError',
    exit: 2,
    http: 400,
    when: 'a request that does not match its route’s schema (a parameter, a header, a JSON body); names the field',
  },
  TARN_RANGE: {
    error: 'ServiceError',
    exit: 1,
    http: 416,
    when: 'a `Range` header that does not fit the value, or asks for several ranges',
  },
  TARN_TIMEOUT: {
    error: 'ServiceError',
    exit: 1,
    http: 408,
    when: 'a client sent its request too slowly or stopped sending (`serve.requestTimeoutMs`, `serve.idleTimeoutMs`); nothing was stored',
  },
  TARN_BUSY: {
    error: 'ServiceError',
    exit: 1,
    http: 503,
    when: 'every upload slot is taken (`serve.maxUploads`); retry after the `Retry-After` seconds',
  },
  TARN_UNAVAILABLE: {
    error: 'ServiceError',
    exit: 1,
    http: 503,
    when: 'the sidecar is shutting down, or has no storage yet (its first config failed to load)',
  },
} as const satisfies Record<string, ErrorRow>;

export type ErrorCode = keyof typeof ERRORS;

/** How an error is reported. `expected` is false for a bug (anything but a TarnError, an OS error or an abort). */
export interface ErrorStatus {
  readonly code: ErrorCode;
  readonly exit: number;
  readonly http: number;
  readonly expected: boolean;
}

/**
 * The code, exit status and HTTP status of any thrown value. A TarnError (or anything carrying one of
 * our codes) has its row; a Node system error is TARN_IO; an AbortError of the platform (fetch,
 * `stream.pipeline` with a signal) is TARN_ABORTED; anything else is an unexpected TARN_ERROR.
 */
export function statusOf(e: unknown): ErrorStatus {
  const code = (e as { code?: unknown } | null)?.code;
  const row = (c: ErrorCode, expected = true): ErrorStatus => ({
    code: c,
    exit: ERRORS[c].exit,
    http: ERRORS[c].http,
    expected,
  });
  if (typeof code === 'string' && Object.hasOwn(ERRORS, code)) return row(code as ErrorCode);
  if (e instanceof Error && (e.name === 'AbortError' || code === 'ABORT_ERR')) return row('TARN_ABORTED');
  if (isSystemError(e)) return row('TARN_IO');
  return row('TARN_ERROR', false);
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
