import { basename, dirname } from 'node:path';
import { WriteError } from '../../errors.js';
import { sleep } from '../../util/process.js';
import { diskLease } from './lease.js';

/** Locks are held for a few syscalls; one not renewed for this long belongs to a stalled or dead holder. */
const STALE_MS = 30_000;

/**
 * A cross-process mutex: a short disk lease (a lock file, see lease.ts) taken, waited for with
 * backoff, and given up after `fn`. A lock whose owner is a dead process on this host, or that is
 * older than 30 s, is broken.
 */
export async function withLock<T>(path: string, fn: () => Promise<T>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let wait = 1;
  for (;;) {
    const lease = await diskLease(dirname(path), basename(path), STALE_MS);
    if (lease) {
      try {
        return await fn();
      } finally {
        await lease.release();
      }
    }
    if (Date.now() > deadline) {
      throw new WriteError(
        `timed out waiting for the lock ${path}; if no tarn process is running, delete it`,
      );
    }
    await sleep(wait);
    wait = Math.min(wait * 2, 20);
  }
}
