import { accessSync, constants } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

export const CACHE = process.env.TARN_CACHE_DIR ?? join(homedir(), '.cache', 'tarn-ts');
export const CACHE_BIN = join(CACHE, 'bin');

const SEARCH = [CACHE_BIN, '/usr/sbin', '/usr/bin', '/usr/local/bin', '/usr/lib/openssh'];

/** The absolute path of a program the bed needs, or undefined. */
export function findBinary(name: string): string | undefined {
  for (const dir of SEARCH) {
    const path = join(dir, name);
    try {
      accessSync(path, constants.X_OK);
      return path;
    } catch {
      // not here
    }
  }
  return undefined;
}

/**
 * Whether a service's programs are installed. In CI a missing one is an error (the suite must not
 * pass by skipping); elsewhere its tests are skipped with a warning that says how to install it.
 */
export function available(service: string, programs: string[]): boolean {
  const missing = programs.filter((p) => !findBinary(p));
  if (missing.length === 0) return true;
  const message = `${service}: ${missing.join(', ')} not found in ${SEARCH.join(', ')}; run \`npm run provision\``;
  if (process.env.CI === 'true') throw new Error(message);
  console.warn(`skipping ${message}`);
  return false;
}

export function binary(name: string): string {
  const path = findBinary(name);
  if (!path) throw new Error(`${name} is not installed; run \`npm run provision\``);
  return path;
}
