// A large file written by path into a lake on a filesystem with reflinks is cloned, then hashed
// from the clone (disk/reflink.ts); elsewhere it is written in one pass, as before.
import {
  appendFileSync,
  closeSync,
  openSync,
  readdirSync,
  readFileSync,
  statfsSync,
  statSync,
  utimesSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { DiskLocation, HashKeyStorage, KeyMismatchError, RefusedError } from '@tarnjs/tarn';
import { describe, expect, it } from 'vitest';
import { pseudoRandom, sha256 } from '../../../helpers/data.js';
import { freshPath, tempDir } from '../../../helpers/tmp.js';
import { xfs } from '../../../helpers/xfs.js';

const mount = xfs();
const MiB = 1 << 20;
const free = (dir: string) => {
  const s = statfsSync(dir);
  return Number(s.bfree) * Number(s.bsize);
};

describe.skipIf(!mount)('a lake on XFS with reflinks', () => {
  const base = mount as string;

  it('clones a large file: no new blocks, the blob read-only and intact, later changes to the source not seen', async () => {
    const lake = new DiskLocation(freshPath(base));
    const storage = new HashKeyStorage(lake);
    const file = freshPath(base, 'large.bin');
    const data = pseudoRandom('cloned', 24 * MiB);
    writeFileSync(file, data);
    const before = free(base);
    expect(await storage.put(file)).toEqual({ key: sha256(data), size: data.length, status: 'stored' });
    // A copy would have taken 24 MiB; a clone shares the blocks (allow for metadata).
    expect(before - free(base)).toBeLessThan(2 * MiB);
    const blob = lake.pathOf(sha256(data));
    expect(statSync(blob).mode & 0o777).toBe(0o444 & statSync(lake.root).mode);
    appendFileSync(file, 'changed afterwards');
    expect(readFileSync(blob).equals(data)).toBe(true);
    expect(await storage.read(sha256(data), (v) => v.verify())).toBeUndefined();
    expect(readdirSync(join(lake.root, '.tmp'))).toEqual([]);
  });

  it('a stored one is `existed`; a wrong expected key stores nothing; a small file is written as before', async () => {
    const lake = new DiskLocation(freshPath(base));
    const storage = new HashKeyStorage(lake);
    const file = freshPath(base, 'again.bin');
    const data = pseudoRandom('again', 9 * MiB);
    writeFileSync(file, data);
    expect((await storage.put(file)).status).toBe('stored');
    expect((await storage.put(file)).status).toBe('existed');
    const other = freshPath(base, 'other.bin');
    writeFileSync(other, pseudoRandom('other', 9 * MiB));
    await expect(storage.write(other, { expectedKey: sha256('not it') })).rejects.toBeInstanceOf(
      KeyMismatchError,
    );
    expect(await storage.contains(sha256(readFileSync(other)))).toBe(false);
    const small = freshPath(base, 'small.bin');
    writeFileSync(small, pseudoRandom('small', MiB));
    const before = free(base);
    expect(await storage.write(small)).toBe(sha256(readFileSync(small)));
    expect(before - free(base)).toBeGreaterThanOrEqual(MiB);
    expect(readdirSync(join(lake.root, '.tmp'))).toEqual([]);
  });

  it('a source written to while it is cloned and hashed: the clone is hashed instead, and verifies', () =>
    changedWhileStored(base));

  it('a file on another filesystem, and a lake opened with kernelCopy: false, are written without a clone', async () => {
    const outside = freshPath(tempDir(), 'outside.bin');
    const data = pseudoRandom('outside', 9 * MiB);
    writeFileSync(outside, data);
    for (const clones of [true, false]) {
      const lake = new DiskLocation(freshPath(base), { kernelCopy: clones });
      const before = free(base);
      expect(await new HashKeyStorage(lake).write(outside)).toBe(sha256(data));
      expect(before - free(base)).toBeGreaterThanOrEqual(9 * MiB);
      expect(readFileSync(lake.pathOf(sha256(data))).equals(data)).toBe(true);
    }
  });
});

describe('a lake on a filesystem without reflinks', () => {
  it('copies a large file in the kernel after hashing it; kernelCopy: false takes no file by path', async () => {
    const base = tempDir();
    const lake = new DiskLocation(freshPath(base));
    const storage = new HashKeyStorage(lake);
    for (const name of ['a', 'b']) {
      const file = freshPath(base, `${name}.bin`);
      const data = pseudoRandom(name, 9 * MiB);
      writeFileSync(file, data);
      expect(await storage.put(file)).toEqual({ key: sha256(data), size: data.length, status: 'stored' });
      expect(readFileSync(lake.pathOf(sha256(data))).equals(data)).toBe(true);
      expect(await lake.ingest(file, { digest: storage.digest })).toMatchObject({ status: 'existed' });
    }
    const off = new DiskLocation(freshPath(base), { kernelCopy: false });
    expect(await off.ingest(freshPath(base, 'a.bin'), { digest: storage.digest })).toBeNull();
    expect(readdirSync(join(lake.root, '.tmp'))).toEqual([]);
  });

  it('a value past max_size is refused as in one pass, with nothing copied into the lake', async () => {
    const base = tempDir();
    const lake = new DiskLocation(freshPath(base), { maxSize: 12 * MiB });
    const storage = new HashKeyStorage(lake);
    const first = freshPath(base, 'first.bin');
    const second = freshPath(base, 'second.bin');
    writeFileSync(first, pseudoRandom('first', 9 * MiB));
    writeFileSync(second, pseudoRandom('second', 9 * MiB));
    expect((await storage.put(first)).status).toBe('stored');
    expect(await lake.ingest(second, { digest: storage.digest })).toBeNull();
    await expect(storage.write(second)).rejects.toBeInstanceOf(RefusedError);
    expect(await storage.contains(sha256(readFileSync(second)))).toBe(false);
    expect(readdirSync(join(lake.root, '.tmp'))).toEqual([]);
  });

  it('a source written to while it is read: what is stored always hashes to its key', () =>
    changedWhileStored(tempDir()));
});

/** A source written to, every millisecond, while it is stored: whatever is stored verifies. */
async function changedWhileStored(base: string): Promise<void> {
  const storage = new HashKeyStorage(freshPath(base));
  for (const change of ['append', 'rewrite'] as const) {
    const file = freshPath(base, `${change}.bin`);
    writeFileSync(file, pseudoRandom(change, 64 * MiB));
    utimesSync(file, new Date('2001-01-01'), new Date('2001-01-01'));
    let n = 0;
    const writer = setInterval(() => {
      const fd = openSync(file, 'r+');
      const bytes = Buffer.from(`change ${String(n++).padStart(6, '0')}`);
      const at = change === 'append' ? statSync(file).size : (n * 7919) % (60 * MiB);
      writeSync(fd, bytes, 0, bytes.length, at);
      closeSync(fd);
    }, 1);
    let key: string;
    try {
      key = await storage.write(file);
    } catch (e) {
      // The one-pass path, if it ran, refuses a file that changed under it: nothing is stored.
      expect((e as Error).message).toMatch(/changed while it was read/);
      continue;
    } finally {
      clearInterval(writer);
    }
    expect(n).toBeGreaterThan(0);
    expect(await storage.read(key, (v) => v.verify())).toBeUndefined();
  }
}
