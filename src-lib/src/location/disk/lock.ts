import { basename, dirname } from 'node:path';
import { WriteError } from '../../errors.js';
import { sleep } from '../../util/process.js';
import { diskLease } from './lease.js';

/** A lock not renewed for this long belongs to a stalled or dead holder (holders renew every 10 s). */
const STALE_MS = 30_000;
/** How long to wait for a live holder before giving up with an error. */
const WAIT_MS = 60_000;

/**
 * A cross-process mutex: a disk lease (a lock file, see lease.ts) taken, waited for with backoff,
 * renewed while `fn` runs and given up after it. A lock whose owner is a dead process on this host,
 * or that was not renewed for 30 s, is broken.
 */
export async function withLock<T>(path: string, fn: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + WAIT_MS;
  let wait = 1;
  for (;;) {
    const lease = await diskLease(dirname(path), basename(path), STALE_MS);
    if (lease) {
      // Renewed while held: a long hold (a recount of a large lake) must not look stale to others.
      const renewal = setInterval(() => void lease.renew().catch(() => false), STALE_MS / 3);
      renewal.unref();
      try {
        return await fn();
      } finally {
        clearInterval(renewal);
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
