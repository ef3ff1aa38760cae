import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

/** The open file descriptors of a process (Linux: the entries of `/proc/<pid>/fd`). */
export function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/**
 * What the descriptors of a process point at (`socket:[…]`, a path, `anon_inode:[eventpoll]`),
 * sorted: printed when a count does not come back, to say what stayed open.
 */
export function fdTargets(pid: number): string[] {
  const out: string[] = [];
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      out.push(readlinkSync(`/proc/${pid}/fd/${fd}`));
    } catch {
      // closed between the listing and the readlink
    }
  }
  return out.sort();
}

/** The resident set of a process in bytes (`VmRSS` of `/proc/<pid>/status`). */
export function rssBytes(pid: number): number {
  const m = /^VmRSS:\s+(\d+)\s+kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(m[1]) * 1024;
}
