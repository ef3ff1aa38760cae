import fsp, { type FileHandle } from 'node:fs/promises';
import { syncBuiltinESMExports } from 'node:module';

type Write = (...args: unknown[]) => Promise<{ bytesWritten: number }>;

export interface WriteWatch {
  /** The furthest byte offset written so far by a positional write. */
  readonly end: number;
  /** The first write error seen, if any. */
  readonly failure: NodeJS.ErrnoException | undefined;
  /** Settles once `done()` holds, checked after every write settles. */
  until(done: () => boolean): Promise<void>;
  restore(): void;
}

/**
 * Observes every FileHandle.write of this process (the library writes temp files through them), so
 * that a test can wait for the event "the write of these bytes finished or failed" instead of sleeping.
 * Observation only: the writes and their outcomes are unchanged.
 */
export async function watchWrites(): Promise<WriteWatch> {
  const probe = await fsp.open(process.execPath, 'r');
  const proto = Object.getPrototypeOf(probe) as { write: Write };
  await probe.close();
  const original = proto.write;
  let end = 0;
  let failure: NodeJS.ErrnoException | undefined;
  let waiters: Array<{ done: () => boolean; resolve: () => void }> = [];
  const settled = () => {
    waiters = waiters.filter((w) => {
      if (!w.done()) return true;
      w.resolve();
      return false;
    });
  };
  proto.write = function (this: unknown, ...args: unknown[]) {
    const p = original.apply(this, args);
    const position = args[3];
    p.then(
      ({ bytesWritten }) => {
        if (typeof position === 'number') end = Math.max(end, position + bytesWritten);
        settled();
      },
      (e: NodeJS.ErrnoException) => {
        failure ??= e;
        settled();
      },
    );
    return p;
  };
  return {
    get end() {
      return end;
    },
    get failure() {
      return failure;
    },
    until: (done) =>
      done() ? Promise.resolve() : new Promise<void>((resolve) => waiters.push({ done, resolve })),
    restore: () => {
      proto.write = original;
    },
  };
}

/**
 * Replaces a method of every FileHandle of this process (e.g. `sync`, to make fsync fail as a full
 * disk makes it fail). Returns the undo.
 */
export async function hookFileHandle(
  name: 'sync' | 'close',
  replacement: (original: (this: FileHandle) => Promise<void>) => (this: FileHandle) => Promise<void>,
): Promise<() => void> {
  const probe = await fsp.open(process.execPath, 'r');
  const proto = Object.getPrototypeOf(probe) as Record<typeof name, (this: FileHandle) => Promise<void>>;
  await probe.close();
  const original = proto[name];
  proto[name] = replacement(original);
  return () => {
    proto[name] = original;
  };
}

/**
 * Replaces a function of node:fs/promises for every module of this process, including the library's
 * named imports (Node re-syncs the ESM bindings of built-in modules): for unit-level reproductions of
 * races that are otherwise a matter of luck. Returns the undo.
 */
export function hookFsPromises<K extends 'link' | 'lstat' | 'rename'>(
  name: K,
  replacement: (original: (typeof fsp)[K]) => (typeof fsp)[K],
): () => void {
  const original = fsp[name];
  (fsp as Record<K, unknown>)[name] = replacement(original);
  syncBuiltinESMExports();
  return () => {
    (fsp as Record<K, unknown>)[name] = original;
    syncBuiltinESMExports();
  };
}
