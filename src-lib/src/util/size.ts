import { ConfigError } from '../errors.js';
import { describeValue } from './describe.js';

const UNITS: ReadonlyMap<string, number> = new Map([
  ['', 1],
  ['b', 1],
  ['k', 1e3],
  ['kb', 1e3],
  ['m', 1e6],
  ['mb', 1e6],
  ['g', 1e9],
  ['gb', 1e9],
  ['t', 1e12],
  ['tb', 1e12],
  ['p', 1e15],
  ['pb', 1e15],
  ['kib', 2 ** 10],
  ['mib', 2 ** 20],
  ['gib', 2 ** 30],
  ['tib', 2 ** 40],
  ['pib', 2 ** 50],
]);

/**
 * A size string: a number and an optional unit, with blanks around either. Every string matches it
 * in one way only (a run of blanks belongs to one `\s*`, since a unit separates the two that can
 * follow the number), so it matches in linear time: the pattern it replaced, with two `\s*` in a row
 * around an optional unit, backtracked quadratically (100 kB of blanks in a lake's config.yml took a
 * minute). The config schema checks sizes with this same pattern.
 */
export const SIZE_PATTERN = /^\s*(\d+(?:\.\d+)?)\s*(?:([a-zA-Z]+)\s*)?$/;

/**
 * Parses a byte count the way Python tarn's config.yml does (humanfriendly.parse_size):
 * plain units are decimal (`10G` = 10^10), `KiB`/`MiB`/... are binary. The result is a safe integer
 * (at most 2^53 - 1 bytes, just under 8 PiB): sizes are added and compared exactly, so a larger count
 * (`10000P`, or 400 digits, which is Infinity) is a ConfigError like any other bad size.
 */
export function parseSize(value: unknown, path: ReadonlyArray<string | number> = []): number {
  /** The count the value names, when it is a size at all. */
  let bytes: number | undefined;
  if (typeof value === 'number') {
    if (Number.isInteger(value) && value >= 0) bytes = value;
  } else if (typeof value === 'string') {
    const m = SIZE_PATTERN.exec(value);
    const unit = m ? UNITS.get((m[2] ?? '').toLowerCase()) : undefined;
    if (m && unit !== undefined) bytes = Math.round(Number(m[1]) * unit);
  }
  if (bytes !== undefined && Number.isSafeInteger(bytes)) return bytes;
  // The value may be anything a config file holds, and long: described briefly, never thrown on.
  const what = describeValue(value, 40);
  throw new ConfigError(
    bytes === undefined
      ? `${what} is not a size; use bytes or a number with a unit (10G, 512MiB)`
      : `${what} is too large a size: at most ${Number.MAX_SAFE_INTEGER} bytes (just under 8 PiB)`,
    path,
  );
}

export function formatSize(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = bytes;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(v < 10 ? 2 : 1)} ${units[i]}`;
}
