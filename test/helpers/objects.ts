import { type Dirent, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';

/**
 * Every file of a lake, read from its folders (not through the library): blobs and temp files,
 * but not config.yml and tools/ (bookkeeping). What a write really left behind.
 */
export function lakeObjects(root: string): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    let entries: Dirent[];
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw e;
    }
    for (const e of entries) {
      const path = join(dir, e.name);
      const rel = relative(root, path);
      if (rel === 'config.yml' || rel === 'tools') continue;
      if (e.isDirectory()) walk(path);
      else out.push(rel);
    }
  };
  walk(root);
  return out.sort();
}
