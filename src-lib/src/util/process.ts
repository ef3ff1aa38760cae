import { createHash, randomBytes } from 'node:crypto';
import { hostname } from 'node:os';

/** A short, filename-safe tag of this host, so files left by a process can be traced to it. */
export const HOST_TAG = createHash('sha256').update(hostname()).digest('hex').slice(0, 8);

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: the process exists but belongs to someone else.
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A name no other writer, on any host sharing the folder, can pick: host tag, pid, random. */
export function ownedName(prefix: string): string {
  return `${prefix}-${HOST_TAG}-${process.pid}-${randomBytes(6).toString('hex')}`;
}

/** Parses a name made by ownedName. */
export function ownerOf(name: string): { host: string; pid: number } | undefined {
  const m = /-([0-9a-f]{8})-(\d+)-[0-9a-f]{12}$/.exec(name);
  return m ? { host: m[1] as string, pid: Number(m[2]) } : undefined;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
