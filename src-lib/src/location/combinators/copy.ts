import type { Digest } from '../../digest.js';
import {
  AbortError,
  CollisionError,
  KeyMismatchError,
  StorageCorruption,
  throwIfAborted,
} from '../../errors.js';
import { pin } from '../../util/recycle.js';
import type { Stage, Value } from '../contract.js';
import { whereOf } from '../tree.js';
import { type Faults, Skipped } from './faults.js';
import { type Place, servedBy } from './members.js';

export interface CopyOptions {
  /** The digest that checks the bytes against the key; undefined: not checked (none is known). */
  digest: Digest | undefined;
  /** Only the first target that accepts up front gets a copy (Python tarn's policy). */
  firstOnly: boolean;
  signal?: AbortSignal;
  faults: Faults;
  /** Told of each copy stored (not of a key a target already held). */
  stored(place: Place): void;
}

/**
 * Copy-on-read: streams `value`, served by `from`, once into a stage on every target that accepts
 * it, hashing as it goes, and commits where the bytes match the key. Returns the targets that now
 * hold the key, in order, or the corruption when the bytes do not match (the source copy is then
 * quarantined and nothing is committed). A target that refuses or fails does without a copy.
 */
export async function copyInto(
  from: Place,
  key: string,
  value: Value,
  targets: readonly Place[],
  options: CopyOptions,
): Promise<Place[] | StorageCorruption> {
  const { signal, faults, digest } = options;
  const byKernel = await ingestInto(from, key, value, targets, options);
  if (byKernel instanceof StorageCorruption) return byKernel;
  if (byKernel.held.length > 0 && options.firstOnly) return byKernel.held;
  targets = byKernel.rest;
  const open: Array<{ place: Place; stage: Stage }> = [];
  try {
    for (const place of targets) {
      const stage = await faults.run(place.index, 'replicate', key, signal, (s) =>
        place.location.stage({ size: value.size, key, digest, signal: s }),
      );
      if (!(stage instanceof Skipped) && stage !== null) {
        open.push({ place, stage });
        if (options.firstOnly) break;
      }
    }
  } catch (e) {
    // The caller aborted, or a key error: the stages opened so far hold temp files.
    await Promise.all(open.map((t) => t.stage.abort().catch(() => undefined)));
    throw e;
  }
  if (open.length === 0) return byKernel.held;
  const h = digest?.create();
  let live = open;
  try {
    for await (const chunk of chunksOf(value, signal)) {
      throwIfAborted(signal);
      h?.update(chunk);
      // One chunk, several stages: none of them may hand it back for reuse.
      if (live.length > 1) pin(chunk);
      const accepted = await Promise.all(live.map((t) => push(t, key, chunk, faults)));
      live = live.filter((_, j) => accepted[j]);
      // Nobody takes a copy any more: stop reading; the reader checks what it is served, if it wants.
      if (live.length === 0) return byKernel.held;
    }
  } catch (e) {
    await Promise.all(live.map((t) => t.stage.abort()));
    if (signal?.aborted) throw new AbortError(signal.reason);
    // The source level failed mid-read: report it, and serve whatever copies exist (none).
    faults.report(from.index, 'read', key, e as Error);
    return byKernel.held;
  }
  if (h) {
    const actual = h.digest('hex');
    if (actual !== key) {
      await Promise.all(live.map((t) => t.stage.abort()));
      const to = await servedBy(value, from.location, key).quarantine?.();
      const corruption = new StorageCorruption(key, actual, whereOf(from.location), to);
      faults.report(from.index, 'corrupt', key, corruption);
      return corruption;
    }
  }
  const held: Place[] = [...byKernel.held];
  for (const t of live) {
    try {
      const result = await t.stage.commit(key);
      if (result.status === 'refused') await t.stage.abort();
      else {
        held.push(t.place);
        if (result.status === 'stored') options.stored(t.place);
      }
    } catch (e) {
      await t.stage.abort().catch(() => undefined);
      if (e instanceof CollisionError) throw e;
      faults.report(t.place.index, 'replicate', key, e as Error);
    }
  }
  return held;
}

/** Below this a copy through the stream costs less than the kernel copy's extra syscalls. */
const INGEST_MIN = 8 << 20;

/**
 * A large value that is a local file, copied into each target that can take a file by path (a
 * disk lake: a clone or the kernel's copy alongside the hash, kernel-copy.ts) instead of through
 * this process's buffers. The target hashes the source and refuses a mismatch, which is the source
 * copy's corruption. `rest`: the targets still to be copied through the stream.
 */
async function ingestInto(
  from: Place,
  key: string,
  value: Value,
  targets: readonly Place[],
  options: CopyOptions,
): Promise<{ held: Place[]; rest: Place[] } | StorageCorruption> {
  const { signal, faults, digest } = options;
  const path = value.path;
  if (path === undefined || digest === undefined || (value.size ?? 0) < INGEST_MIN) {
    return { held: [], rest: [...targets] };
  }
  const held: Place[] = [];
  const rest: Place[] = [];
  for (const place of targets) {
    const ingest = place.location.ingest?.bind(place.location);
    // With `firstOnly`, a target before this one that takes no file by path may still take the
    // stream: the order decides, so nothing after it is copied by the kernel.
    if (!ingest || (options.firstOnly && (held.length > 0 || rest.length > 0))) {
      rest.push(place);
      continue;
    }
    let result: Awaited<ReturnType<typeof ingest>> | Skipped;
    try {
      result = await faults.run(place.index, 'replicate', key, signal, (s) =>
        ingest(path, { digest, key, signal: s }),
      );
    } catch (e) {
      if (!(e instanceof KeyMismatchError)) throw e;
      const to = await servedBy(value, from.location, key).quarantine?.();
      const corruption = new StorageCorruption(key, e.actual, whereOf(from.location), to);
      faults.report(from.index, 'corrupt', key, corruption);
      return corruption;
    }
    if (result instanceof Skipped) continue; // failed: this level does without a copy
    if (result === null) {
      rest.push(place);
      continue;
    }
    held.push(place);
    if (result.status === 'stored') options.stored(place);
  }
  return { held, rest };
}

async function push(t: { place: Place; stage: Stage }, key: string, chunk: Buffer, faults: Faults) {
  try {
    if (await t.stage.push(chunk)) return true;
  } catch (e) {
    faults.report(t.place.index, 'replicate', key, e as Error);
  }
  // Refused (too large for it) or failed: this level does without a copy.
  await t.stage.abort().catch(() => undefined);
  return false;
}

/** A small value in one piece when its location can do that (a file read beats a stream's round trips). */
async function* chunksOf(value: Value, signal: AbortSignal | undefined): AsyncIterable<Buffer> {
  if (value.bytes && value.size !== undefined && value.size <= 1 << 20) yield await value.bytes({ signal });
  else for await (const chunk of value.stream({ signal })) yield chunk as Buffer;
}
