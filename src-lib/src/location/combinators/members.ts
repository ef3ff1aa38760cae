import { PartialDeleteError } from '../../errors.js';
import type { Location, OpOptions, Value } from '../contract.js';
import { whereOf } from '../tree.js';

/** A child of a combinator, by its index (which names it in fault reports) and its location. */
export interface Place {
  readonly index: number;
  readonly location: Location;
}

/** A value handed out by a member, which knows how to take just that copy out of service. */
export function servedBy(value: Value, member: Location, key: string): Value {
  const quarantine = async (): Promise<string | undefined> =>
    value.quarantine ? value.quarantine() : quarantineIn(member, key);
  const bytes = value.bytes;
  const range = value.range;
  return {
    path: value.path,
    size: value.size,
    stream: (options) => value.stream(options),
    range: range ? (start, end, options) => range.call(value, start, end, options) : undefined,
    bytes: bytes ? (options) => bytes.call(value, options) : undefined,
    quarantine,
    close: () => value.close(),
  };
}

/**
 * Takes a corrupt blob out of service where the location can keep it aside (a disk moves it to
 * tools/quarantine/), else deletes it. A missing key is no error. Returns where it went, if kept.
 */
export async function quarantineIn(
  location: Location,
  key: string,
  options?: OpOptions,
): Promise<string | undefined> {
  if (location.quarantine) return location.quarantine(key, options);
  await location.delete(key, options);
  return undefined;
}

/**
 * The keys of several locations, each once (a Set of those seen: about 100 bytes per key). A failing
 * listing is passed to `onError` when given (and the others go on), else thrown.
 */
export async function* distinctKeys(
  locations: readonly Location[],
  options?: OpOptions,
  onError?: (index: number, error: Error) => void,
): AsyncIterable<string> {
  const seen = new Set<string>();
  for (let i = 0; i < locations.length; i++) {
    try {
      for await (const k of (locations[i] as Location).keys(options)) {
        if (!seen.has(k)) {
          seen.add(k);
          yield k;
        }
      }
    } catch (e) {
      if (!onError || options?.signal?.aborted) throw e;
      onError(i, e as Error);
    }
  }
}

/**
 * Deletes the key from every one of `locations`, even after one fails: a copy left anywhere could
 * come back. True when one held it. When some failed, PartialDeleteError says what was deleted where
 * and what failed (a nested combinator's partial delete is merged in, location by location); the
 * caller's abort still throws as it is.
 */
export async function deleteEverywhere(
  locations: readonly Location[],
  key: string,
  options?: OpOptions,
): Promise<boolean> {
  const deleted: string[] = [];
  const failed: Array<{ where: string; message: string }> = [];
  let first: unknown;
  for (const location of locations) {
    try {
      if (await location.delete(key, options)) deleted.push(whereOf(location));
    } catch (e) {
      if (options?.signal?.aborted) throw e;
      first ??= e;
      if (e instanceof PartialDeleteError) {
        deleted.push(...e.deleted);
        failed.push(...e.failed);
      } else failed.push({ where: whereOf(location), message: (e as Error).message ?? String(e) });
    }
  }
  if (failed.length > 0) throw new PartialDeleteError(key, deleted, failed, { cause: first });
  return deleted.length > 0;
}
