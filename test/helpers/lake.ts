import { type Dirent, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';

/** A value as a stream of `size`-byte chunks (the storage learns its size only at the end). */
export async function* chunks(buf: Buffer, size = 1 << 20): AsyncGenerator<Buffer> {
  for (let i = 0; i < buf.length; i += size) yield buf.subarray(i, i + size);
}

/** The keys of the blobs in a disk lake, read from its folders (not through the library), sorted. */
export function blobs(root: string): string[] {
  return readdirSync(root)
    .filter((d) => /^[0-9a-f]{2}$/.test(d))
    .flatMap((d) => readdirSync(join(root, d)).map((f) => d + f))
    .sort();
}

/**
 * Every file in a disk lake but its config.yml, relative to the lake (blobs, temp files, quarantined
 * and usage files alike), read from its folders, sorted: what a count of copies must look at.
 */
export function lakeFiles(root: string): string[] {
  return (readdirSync(root, { recursive: true, withFileTypes: true }) as Dirent[])
    .filter((e) => !e.isDirectory())
    .map((e) => relative(root, join(e.parentPath, e.name)))
    .filter((f) => f !== 'config.yml')
    .sort();
}

/**
 * The files of a lake that hold or will hold values (blobs and temp files; not config.yml and
 * tools/, which are bookkeeping): what a write really left behind. A lake not made yet holds none.
 */
export function lakeObjects(root: string): string[] {
  try {
    return lakeFiles(root).filter((f) => f !== 'tools' && !f.startsWith('tools/'));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
}
