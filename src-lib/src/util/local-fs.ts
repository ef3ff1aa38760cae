import { readFileSync, statfsSync } from 'node:fs';
import { resolve, sep } from 'node:path';

/**
 * Which files live on a filesystem that answers from the kernel's caches or a local disk, so that a
 * synchronous syscall on them blocks the event loop for microseconds (a page-cache hit) or a local
 * disk's latency, never for a network round trip or a FUSE daemon that may not answer. The library
 * does small reads and writes synchronously only there (docs/performance.md, "Synchronous syscalls
 * for small values"); everything else goes through libuv's thread pool.
 */

/** Values up to this many bytes are read or written with synchronous syscalls on a local filesystem. */
export const SYNC_MAX = 64 << 10;

/** Local filesystems by statfs f_type. */
const LOCAL_MAGIC = new Set([
  0xef53, // ext2/3/4
  0x58465342, // XFS
  0x9123683e, // btrfs
  0x01021994, // tmpfs
  0x2fc12fc1, // ZFS
  0xf2f52010, // F2FS
  0x794c7630, // overlayfs (containers)
]);

/** The same, by the type name /proc/self/mountinfo gives. */
const LOCAL_TYPES = new Set(['ext2', 'ext3', 'ext4', 'xfs', 'btrfs', 'tmpfs', 'zfs', 'f2fs', 'overlay']);

/** Whether the folder or file at `path` sits on a local filesystem (by statfs); false when it cannot tell. */
export function onLocalFilesystem(path: string): boolean {
  try {
    return LOCAL_MAGIC.has(Number(statfsSync(path).type));
  } catch {
    return false;
  }
}

interface MountTable {
  /** Mount points, longest first, so the first prefix found is the mount a path is under. */
  readonly points: ReadonlyArray<{ readonly point: string; readonly local: boolean }>;
  /** Device numbers (as fstat gives them) of the local mounts. */
  readonly localDevices: ReadonlySet<number>;
  readonly readAt: number;
}

/** Mounts change rarely; the table is read again at most this often. */
const TABLE_TTL_MS = 5000;
let table: MountTable | undefined;

/**
 * Whether a path, as written (resolved against the working folder, links not followed), lies under
 * a local mount. This is a guess made without a syscall on the path: a symbolic link on the way
 * can lead to another filesystem, so whoever opens on this guess checks the descriptor's device
 * with `localDevice` before doing more than the open. False where there is no mount table (not
 * Linux, no /proc).
 */
export function localPath(path: string): boolean {
  const t = mountTable();
  if (!t) return false;
  const p = resolve(path);
  for (const { point, local } of t.points) {
    if (p === point || p.startsWith(point === sep ? sep : point + sep)) return local;
  }
  return false;
}

/** Whether a device number (fstat's `dev`) is that of a local mount. */
export function localDevice(dev: number | bigint): boolean {
  return mountTable()?.localDevices.has(Number(dev)) ?? false;
}

function mountTable(): MountTable | undefined {
  const now = Date.now();
  if (table && now - table.readAt < TABLE_TTL_MS) return table;
  let text: string;
  try {
    text = readFileSync('/proc/self/mountinfo', 'utf8');
  } catch {
    return undefined;
  }
  table = parseMountInfo(text, now);
  return table;
}

/**
 * /proc/self/mountinfo, one mount per line: `id parent major:minor root point options [optional…] -
 * type source super-options`, with spaces, tabs, newlines and backslashes in paths written as octal
 * escapes. A later mount on the same point hides an earlier one, so the last line for a point wins.
 */
export function parseMountInfo(text: string, readAt = Date.now()): MountTable {
  const byPoint = new Map<string, boolean>();
  const localDevices = new Set<number>();
  for (const line of text.split('\n')) {
    const fields = line.split(' ');
    const dash = fields.indexOf('-');
    if (dash < 6 || fields.length < dash + 2) continue;
    const [major, minor] = (fields[2] ?? '').split(':').map(Number);
    const point = unescapeOctal(fields[4] ?? '');
    const type = fields[dash + 1] ?? '';
    if (major === undefined || minor === undefined || !point.startsWith(sep)) continue;
    const local = LOCAL_TYPES.has(type);
    byPoint.delete(point);
    byPoint.set(point, local);
    if (local) localDevices.add(makedev(major, minor));
  }
  const points = [...byPoint].map(([point, local]) => ({ point, local }));
  points.sort((a, b) => b.point.length - a.point.length);
  return { points, localDevices, readAt };
}

/** glibc's makedev, the encoding st_dev uses on Linux, in arithmetic (it does not fit 32-bit operators). */
function makedev(major: number, minor: number): number {
  return (
    (minor % 256) +
    (major % 4096) * 256 +
    Math.floor(minor / 256) * 2 ** 20 +
    Math.floor(major / 4096) * 2 ** 44
  );
}

function unescapeOctal(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(Number.parseInt(oct, 8)));
}
