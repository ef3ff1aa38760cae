import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, stat, unlink, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { HOST_TAG, isAlive } from '../../util/process.js';
import type { Lease } from '../contract.js';

/**
 * A lease as a lock file `<dir>/<name>` created with O_EXCL, holding `host pid token`. Its mtime
 * is the last renewal: a file not renewed for `ttlMs` is expired, and so at once is one whose
 * holder was a process on this host that is gone. Breaking an expired lock races with another
 * breaker at worst into two holders; callers use leases to avoid duplicate work, not for safety.
 */
export async function diskLease(dir: string, name: string, ttlMs: number): Promise<Lease | null> {
  const path = join(dir, name);
  const token = randomBytes(8).toString('hex');
  const content = `${HOST_TAG} ${process.pid} ${token}`;
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fh = await open(path, 'wx', 0o644);
      try {
        await fh.writeFile(content);
      } finally {
        await fh.close();
      }
      return new DiskLease(path, content);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') {
        await mkdir(dir, { recursive: true });
        continue;
      }
      if (code !== 'EEXIST') throw e;
    }
    if (!(await expired(path, ttlMs))) return null;
    await unlink(path).catch(() => undefined);
  }
  return null;
}

async function expired(path: string, ttlMs: number): Promise<boolean> {
  try {
    const [text, st] = await Promise.all([readFile(path, 'utf8'), stat(path)]);
    const [host, pid] = text.split(' ');
    if (host === HOST_TAG && pid && !isAlive(Number(pid))) return true;
    return Date.now() - st.mtimeMs > ttlMs;
  } catch {
    return false; // released meanwhile: the next attempt creates it
  }
}

class DiskLease implements Lease {
  constructor(
    private readonly path: string,
    private readonly content: string,
  ) {}

  async #ours(): Promise<boolean> {
    return (await readFile(this.path, 'utf8').catch(() => '')) === this.content;
  }

  async renew(): Promise<boolean> {
    if (!(await this.#ours())) return false;
    const now = new Date();
    // Gone between the check and now: lost. Writing it again could take over a new holder's lock.
    return utimes(this.path, now, now).then(
      () => true,
      () => false,
    );
  }

  async release(): Promise<void> {
    if (await this.#ours()) await unlink(this.path).catch(() => undefined);
  }
}
