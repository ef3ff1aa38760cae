import type { Location } from '../location/contract.js';

/**
 * The entries of a memo index: small documents under call keys (smartCache's JSON), read and
 * written here for smartCache and for the sidecar's `/v1/memo` routes alike. Keys do not name the
 * bytes of an entry, so nothing is checked against them.
 */

/** The bytes stored under `key`, or undefined: one read where the location can (a file: 2× faster than a stream for a 100-byte entry). */
export async function readIndexEntry(
  index: Location,
  key: string,
  signal?: AbortSignal,
): Promise<Buffer | undefined> {
  const raw = await index.read(key, { digest: null, signal });
  if (!raw) return undefined;
  try {
    if (raw.bytes) return await raw.bytes({ signal });
    const parts: Buffer[] = [];
    for await (const chunk of raw.stream({ signal })) parts.push(chunk as Buffer);
    return Buffer.concat(parts);
  } finally {
    await raw.close();
  }
}

/**
 * Stores `entry` under `key` unless something is stored there already (`existed`); `refused` when
 * the index would not take it. A different entry the index can tell apart (by size, say) is its
 * CollisionError, thrown.
 */
export async function writeIndexEntry(
  index: Location,
  key: string,
  entry: Buffer,
  signal?: AbortSignal,
): Promise<'stored' | 'existed' | 'refused'> {
  const stage = await index.stage({ key, size: entry.byteLength, signal });
  if (!stage) return 'refused';
  try {
    if (!(await stage.push(entry))) {
      await stage.abort();
      return 'refused';
    }
    const result = await stage.commit(key);
    if (result.status === 'refused') await stage.abort();
    return result.status;
  } catch (e) {
    await stage.abort().catch(() => undefined);
    throw e;
  }
}
