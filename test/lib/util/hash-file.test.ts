import { chmodSync, writeFileSync } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import { join } from 'node:path';
import { HashKeyStorage, StorageCorruption } from '@tarnjs/tarn';
import { describe, expect, it } from 'vitest';
import { digest } from '../../../src-lib/src/digest.js';
import { CHUNK } from '../../../src-lib/src/util/chunks.js';
import { hashHandle } from '../../../src-lib/src/util/hash-file.js';
import { prng, pseudoRandom, sha256 } from '../../helpers/data.js';
import { freshPath, tempDir } from '../../helpers/tmp.js';

const base = tempDir();
const sha = digest('sha256');

async function hashOfFile(path: string, signal?: AbortSignal, readAtMost?: () => number) {
  const fh = await open(path, 'r');
  // A handle whose reads come back short, as a network filesystem's may.
  const shortReads = readAtMost && {
    read: (buf: Buffer, at: number, length: number, position: number) =>
      fh.read(buf, at, Math.max(1, Math.min(length, readAtMost())), position),
  };
  try {
    return await hashHandle((shortReads ?? fh) as FileHandle, sha, signal);
  } finally {
    await fh.close();
  }
}

describe('hashing a file into reused buffers', () => {
  it('gives the digest of every size around the buffer edges', async () => {
    for (const size of [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, 3 * CHUNK + 5, 5 * CHUNK]) {
      const data = pseudoRandom(`size ${size}`, size);
      const path = freshPath(base);
      writeFileSync(path, data);
      expect(await hashOfFile(path), `size ${size}`).toBe(sha256(data));
    }
  });

  it('hashes the whole file when reads come back short, at any sizes', async () => {
    const path = freshPath(base);
    const data = pseudoRandom('short reads', 4 * CHUNK + 123);
    writeFileSync(path, data);
    const next = prng(7);
    for (let round = 0; round < 5; round++) {
      expect(await hashOfFile(path, undefined, () => Math.floor(next() * 1.5 * CHUNK))).toBe(sha256(data));
    }
  });

  it('stops with TARN_ABORTED when the signal fires, with no read left running', async () => {
    const path = freshPath(base);
    writeFileSync(path, pseudoRandom('abort', 8 * CHUNK));
    const fh = await open(path, 'r');
    const controller = new AbortController();
    controller.abort(new Error('stop'));
    await expect(hashHandle(fh, sha, controller.signal)).rejects.toMatchObject({
      code: 'TARN_ABORTED',
    });
    await fh.close(); // would fail (EBADF on a read in flight) if one were still running
  });

  it('is what verify() uses for a large blob: a flipped byte is StorageCorruption, and quarantined', async () => {
    const lake = freshPath(base);
    const data = pseudoRandom('verify by hash', 3 * CHUNK);
    const storage = new HashKeyStorage(lake);
    const key = await storage.write(data);
    await storage.read(key, (v) => v.verify(), { verify: true });
    const blob = join(lake, key.slice(0, 2), key.slice(2));
    const rotten = Buffer.from(data);
    rotten.writeUInt8(rotten.readUInt8(CHUNK + 7) ^ 0x40, CHUNK + 7);
    chmodSync(blob, 0o644);
    writeFileSync(blob, rotten);
    await expect(storage.read(key, (v) => v.verify(), { verify: true })).rejects.toBeInstanceOf(
      StorageCorruption,
    );
    expect(await storage.contains(key)).toBe(false);
  });
});
