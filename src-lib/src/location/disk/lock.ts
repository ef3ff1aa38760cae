import { open, readFile, unlink } from 'node:fs/promises';
import { WriteError } from '../../errors.js';
import { HOST_TAG, isAlive, sleep } from '../../util/process.js';

/** Locks are held for a few syscalls; one older than this belongs to a stalled or dead holder. */
const STALE_MS = 30_000;

/**
 * A cross-process mutex as an O_EXCL lock file holding its owner's host, pid and time.
 * A lock whose owner is a dead process on this host, or that is older than 30 s, is broken.
 */
export async function withLock<T>(path: string, fn: () => Promise<T>, timeoutMs = 60_000): Promise<T> {
  const token = `${HOST_TAG} ${process.pid} ${Date.now()}`;
  const deadline = Date.now() + timeoutMs;
  let wait = 1;
  for (;;) {
    try {
      const fh = await open(path, 'wx', 0o644);
      await fh.writeFile(token);
      await fh.close();
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    if (await isStale(path)) {
      await unlink(path).catch(() => undefined);
      continue;
    }
    if (Date.now() > deadline) {
      throw new WriteError(
        `timed out waiting for the lock ${path}; if no tarn process is running, delete it`,
      );
    }
    await sleep(wait);
    wait = Math.min(wait * 2, 20);
  }
  try {
    return await fn();
  } finally {
    await unlink(path).catch(() => undefined);
  }
}

async function isStale(path: string): Promise<boolean> {
  const text = await readFile(path, 'utf8').catch(() => undefined);
  if (text === undefined) return false; // released in between: just retry
  const [host, pid, time] = text.split(' ');
  // A lock file caught between create and write is empty; its age tells.
  if (!time) return false;
  if (host === HOST_TAG && !isAlive(Number(pid))) return true;
  return Date.now() - Number(time) > STALE_MS;
}
