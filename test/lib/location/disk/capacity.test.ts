import { readdirSync, readFileSync, statfsSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DiskLocation, HashKeyStorage, RefusedError } from '@tarnjs/tarn';
import { describe, expect, it } from 'vitest';
import { pseudoRandom, sha256 } from '../../../helpers/data.js';
import { child, collect } from '../../../helpers/spawn.js';
import { freshPath, tempDir } from '../../../helpers/tmp.js';

const base = tempDir();

async function* chunks(buf: Buffer, size = 1 << 20) {
  for (let i = 0; i < buf.length; i += size) yield buf.subarray(i, i + size);
}

async function drain(source: AsyncIterable<Uint8Array> | undefined): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const c of source ?? []) parts.push(c);
  return Buffer.concat(parts);
}

describe('maxSize', () => {
  it('refuses a write that would pass the cap, before any byte moves when the size is known', async () => {
    const root = freshPath(base);
    const lake = new DiskLocation(root, { maxSize: 10_000 });
    const storage = new HashKeyStorage(lake);
    await storage.write(pseudoRandom('a', 6000));
    // Any temp file made and removed in .tmp/ would change the folder's mtime (ns resolution here).
    const tmpTime = () => statSync(join(root, '.tmp'), { bigint: true }).mtimeNs;
    const before = tmpTime();
    const err = await storage.write(pseudoRandom('b', 6000)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RefusedError);
    expect(await lake.stage({ size: 6000 })).toBeNull();
    expect(tmpTime()).toBe(before);
    // A buffer can simply be offered again: nothing to hand back.
    expect((err as RefusedError).source()).toBeUndefined();
    expect(await storage.write(pseudoRandom('c', 4000))).toBe(sha256(pseudoRandom('c', 4000)));
    expect(JSON.parse(readFileSync(join(root, 'tools', 'size.json'), 'utf8'))).toEqual({
      bytes: 10_000,
      blobs: 2,
    });
  });

  it('a streamed value refused midway is handed back whole, so nothing is lost', async () => {
    const root = freshPath(base);
    const storage = new HashKeyStorage(new DiskLocation(root, { maxSize: 3 << 20 }));
    const data = pseudoRandom('too big', 5 << 20);
    const err = await storage.write(chunks(data)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RefusedError);
    const back = await drain((err as RefusedError).source());
    expect(back.equals(data)).toBe(true);
    expect(() => (err as RefusedError).source()).toThrow(/already replayed/);
    expect(await storage.contains(sha256(data))).toBe(false);
  });

  it('discard() releases what a refused stream held', async () => {
    const root = freshPath(base);
    const storage = new HashKeyStorage(new DiskLocation(root, { maxSize: 1 << 20 }));
    const err = (await storage
      .write(chunks(pseudoRandom('discarded', 3 << 20)))
      .catch((e: unknown) => e)) as RefusedError;
    expect(readdirSync(join(root, '.tmp'))).toHaveLength(1);
    await err.discard();
    expect(readdirSync(join(root, '.tmp'))).toEqual([]);
    expect(() => err.source()).toThrow(/discarded/);
  });

  it('a duplicate write and a delete keep the total right, across instances', async () => {
    const root = freshPath(base);
    const s1 = new HashKeyStorage(new DiskLocation(root, { maxSize: '1M' }));
    const k = await s1.write(pseudoRandom('x', 1000));
    await s1.write(pseudoRandom('x', 1000));
    await s1.write(pseudoRandom('y', 500));
    const s2 = new HashKeyStorage(root);
    expect(await s2.delete(k)).toBe(true);
    expect(JSON.parse(readFileSync(join(root, 'tools', 'size.json'), 'utf8'))).toEqual({
      bytes: 500,
      blobs: 1,
    });
  });

  it('a value already stored is `existed` at the cap, written as a buffer, a path or a stream', async () => {
    const root = freshPath(base);
    const storage = new HashKeyStorage(new DiskLocation(root, { maxSize: 3 << 20 }));
    const data = pseudoRandom('fills the cap', 3 << 20);
    const key = await storage.write(data);
    const file = join(base, 'at-the-cap.bin');
    writeFileSync(file, data);
    expect(await storage.write(data)).toBe(key);
    expect(await storage.write(file)).toBe(key);
    expect(await storage.write(chunks(data))).toBe(key);
    expect(await storage.write(chunks(data), { expectedKey: key })).toBe(key);
    // Nothing was added to the total, and a new value is still refused.
    expect(JSON.parse(readFileSync(join(root, 'tools', 'size.json'), 'utf8'))).toEqual({
      bytes: 3 << 20,
      blobs: 1,
    });
    await expect(storage.write(Buffer.from('one byte too many'))).rejects.toBeInstanceOf(RefusedError);
    expect(readdirSync(join(root, '.tmp'))).toEqual([]);
  });

  it('a stored stream longer than the look-ahead (16 MiB past the refusal) is refused, and handed back whole', async () => {
    // Telling that it is stored would mean holding the whole stream in memory: past 16 MiB we refuse.
    const root = freshPath(base);
    const storage = new HashKeyStorage(new DiskLocation(root, { maxSize: 20 << 20 }));
    const data = pseudoRandom('longer than the look-ahead', 20 << 20);
    await storage.write(data);
    const err = (await storage.write(chunks(data)).catch((e: unknown) => e)) as RefusedError;
    expect(err).toBeInstanceOf(RefusedError);
    expect((await drain(err.source())).equals(data)).toBe(true);
    expect(readdirSync(join(root, '.tmp'))).toEqual([]);
  });

  it('processes writing at once never pass the cap together', async () => {
    const root = freshPath(base);
    new DiskLocation(root, { maxSize: 20_000 });
    const writers = [0, 1, 2, 3].map((p) =>
      collect(
        child('writer.mjs', [
          root,
          JSON.stringify([0, 1, 2, 3, 4].map((i) => ({ seed: `p${p}-${i}`, size: 2000 }))),
        ]),
      ),
    );
    const results = (await Promise.all(writers)).map(
      (r) => JSON.parse(r.stdout) as Array<{ key?: string; error?: string }>,
    );
    const stored = results.flat().filter((r) => r.key);
    const refused = results.flat().filter((r) => r.error);
    expect(stored).toHaveLength(10);
    expect(refused.every((r) => r.error === 'TARN_REFUSED')).toBe(true);
    expect(refused).toHaveLength(10);
    const lake = new DiskLocation(root);
    let bytes = 0;
    for await (const key of lake.keys()) bytes += readFileSync(lake.pathOf(key)).length;
    expect(bytes).toBe(20_000);
    expect((await lake.sweep()).usage).toEqual({ bytes: 20_000, blobs: 10 });
  });
});

describe('minFreeSpace', () => {
  // tmpfs: its free space does not move under us while the test runs.
  const shm = tempDir('tarn-shm-', '/dev/shm');

  it('refuses when the filesystem is short of the reserve, and hands an untouched stream back', async () => {
    const storage = new HashKeyStorage(new DiskLocation(freshPath(shm), { minFreeSpace: '1PB' }));
    await expect(storage.write(Buffer.from('x'))).rejects.toBeInstanceOf(RefusedError);
    const data = pseudoRandom('refused up front', 3 << 20);
    const err = (await storage.write(chunks(data)).catch((e: unknown) => e)) as RefusedError;
    expect(err).toBeInstanceOf(RefusedError);
    expect((await drain(err.source())).equals(data)).toBe(true);
  });

  it('refuses midway a stream that would eat into the reserve, and hands it back', async () => {
    const root = freshPath(shm);
    const s = statfsSync('/dev/shm');
    const free = s.bavail * s.bsize;
    const storage = new HashKeyStorage(new DiskLocation(root, { minFreeSpace: free - (8 << 20) }));
    const data = pseudoRandom('fills the disk', 20 << 20);
    const err = await storage.write(chunks(data)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RefusedError);
    expect((await drain((err as RefusedError).source())).equals(data)).toBe(true);
    expect(await storage.contains(sha256(data))).toBe(false);
    // Small values still fit.
    expect(await storage.write(Buffer.from('small'))).toBe(sha256('small'));
  });

  it('a value already stored is `existed` when free space is short of the reserve', async () => {
    const root = freshPath(shm);
    const storage = new HashKeyStorage(new DiskLocation(root));
    const data = pseudoRandom('stored before the reserve grew', (2 << 20) + 3);
    const key = await storage.write(data);
    // Every writer now keeps a petabyte free: no write fits any more.
    writeFileSync(join(root, 'config.yml'), 'free_disk_size: 1PB\nlevels:\n- 1\n- -1\n');
    const full = new HashKeyStorage(new DiskLocation(root));
    const file = join(shm, 'stored.bin');
    writeFileSync(file, data);
    expect(await full.write(data)).toBe(key);
    expect(await full.write(file)).toBe(key);
    expect(await full.write(chunks(data))).toBe(key);
    await expect(full.write(Buffer.from('new'))).rejects.toBeInstanceOf(RefusedError);
    expect(readdirSync(join(root, '.tmp'))).toEqual([]);
  });
});
