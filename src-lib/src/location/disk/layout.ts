import { assertHexKey, type Digest } from '../../digest.js';
import { ConfigError, InvalidKeyError, throwIfAborted } from '../../errors.js';

/**
 * A lake's `levels`: how many key bytes name each folder level, -1 meaning "the rest".
 * Python tarn's default [1, -1] turns 2cf24dba... into 2c/f24dba...
 */
export type Levels = readonly number[];

export function validateLevels(levels: unknown): Levels {
  if (
    !Array.isArray(levels) ||
    levels.length === 0 ||
    !levels.every((l, i) => Number.isInteger(l) && (l > 0 || (l === -1 && i === levels.length - 1)))
  ) {
    throw new ConfigError(
      `${JSON.stringify(levels)} is not a layout; use positive byte counts, optionally ending in -1 (the rest), e.g. [1, -1]`,
      ['levels'],
    );
  }
  return levels as number[];
}

/** Hex length every key must have under these levels, or undefined when the last level is -1. */
export function fixedHexLength(levels: Levels): number | undefined {
  return levels.at(-1) === -1 ? undefined : levels.reduce((a, b) => a + b, 0) * 2;
}

/**
 * Throws ConfigError (field `levels`) unless keys of `d` fit the layout: a fixed layout must add up to
 * the digest's size, and one ending in -1 must leave at least one byte for the blob's name. Otherwise
 * every valid key would be rejected, and the lake's blobs would be invisible to listing and verify.
 * `where` names the file, `whence` says where the digest came from.
 */
export function checkLevelsFit(levels: Levels, d: Digest, where: string, whence: string): void {
  const fixed = fixedHexLength(levels);
  const prefix = levels.reduce((a, l) => a + (l > 0 ? l * 2 : 0), 0);
  if (fixed !== undefined ? fixed === d.hexLength : prefix < d.hexLength) return;
  const takes = fixed !== undefined ? `${fixed} hex characters` : `keys longer than ${prefix} hex characters`;
  throw new ConfigError(
    `${JSON.stringify(levels)} in ${where} take${fixed !== undefined ? ' keys of' : ''} ${takes}, but ${d.name} keys have ${d.hexLength} (${whence}); fix levels, or record the lake's digest as \`hash\``,
    ['levels'],
  );
}

/** The key's path relative to the lake root, as folder components. */
export function keyToParts(key: string, levels: Levels): string[] {
  assertHexKey(key);
  const fixed = fixedHexLength(levels);
  const prefix = levels.reduce((a, l) => a + (l > 0 ? l * 2 : 0), 0);
  if (fixed !== undefined ? key.length !== fixed : key.length <= prefix) {
    throw new InvalidKeyError(
      key,
      fixed !== undefined
        ? `this lake's layout ${JSON.stringify(levels)} takes keys of ${fixed} hex characters`
        : `this lake's layout ${JSON.stringify(levels)} takes keys longer than ${prefix} hex characters`,
    );
  }
  const parts: string[] = [];
  let start = 0;
  for (const level of levels) {
    const stop = level === -1 ? key.length : start + level * 2;
    parts.push(key.slice(start, stop));
    start = stop;
  }
  return parts;
}

const HEX = /^[0-9a-f]+$/;

/** Whether a directory entry name can be the component at `depth` (filters config.yml, tools/, .tmp/). */
export function isComponent(name: string, levels: Levels, depth: number): boolean {
  const level = levels[depth];
  if (level === undefined || !HEX.test(name)) return false;
  return level === -1 ? name.length % 2 === 0 : name.length === level * 2;
}

/** One folder entry as a location lists it: `blob` says it can hold a value at the last level. */
export interface LakeEntry {
  name: string;
  dir: boolean;
  blob: boolean;
}

/**
 * Every key of a lake laid out by `levels`, walking folder by folder with the location's own
 * listing (a local readdir, an autoindex page, an SFTP readdir). Names that cannot be key parts
 * (config.yml, tools/, .tmp/, foreign files) are passed over. `folder` is a path relative to the root.
 */
export async function* walkLake(
  levels: Levels,
  list: (folder: string) => AsyncIterable<LakeEntry> | Iterable<LakeEntry> | Promise<Iterable<LakeEntry>>,
  signal?: AbortSignal,
): AsyncGenerator<string> {
  const walk = async function* (folder: string, depth: number, prefix: string): AsyncGenerator<string> {
    for await (const entry of await list(folder)) {
      throwIfAborted(signal);
      if (!isComponent(entry.name, levels, depth)) continue;
      if (depth === levels.length - 1) {
        if (entry.blob) yield prefix + entry.name;
      } else if (entry.dir) {
        yield* walk(folder ? `${folder}/${entry.name}` : entry.name, depth + 1, prefix + entry.name);
      }
    }
  };
  yield* walk('', 0, '');
}
