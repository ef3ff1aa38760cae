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

/**
 * The last part of ownedName: 48 bits, random at the start of the process, then counted up. Random
 * bytes per name cost ~10 µs each (a call into OpenSSL's generator), a fifth of a small write; a
 * counter is unique within the process, the pid and host tag tell processes apart, and the random
 * start keeps a later process with a reused pid off the names of one that died. Files are created
 * with O_EXCL, so even a clash could only fail a create, never share a file.
 */
const NAME_SPACE = 2 ** 48;
let nameCounter = randomBytes(6).readUIntBE(0, 6);

/** A name no other writer, on any host sharing the folder, can pick: host tag, pid, a unique tail. */
export function ownedName(prefix: string): string {
  nameCounter = (nameCounter + 1) % NAME_SPACE;
  return `${prefix}-${HOST_TAG}-${process.pid}-${nameCounter.toString(16).padStart(12, '0')}`;
}

/** Parses a name made by ownedName. */
export function ownerOf(name: string): { host: string; pid: number } | undefined {
  const m = /-([0-9a-f]{8})-(\d+)-[0-9a-f]{12}$/.exec(name);
  return m ? { host: m[1] as string, pid: Number(m[2]) } : undefined;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
