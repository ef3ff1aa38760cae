import { closeSync, openSync, readdirSync, rmSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { DiskLocation, HashKeyStorage, RefusedError, WriteError } from '@tarnjs/tarn';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { pseudoRandom, sha256 } from '../../../helpers/data.js';
import { hookFileHandle, type WriteWatch, watchWrites } from '../../../helpers/fs-hooks.js';
import { chunks } from '../../../helpers/lake.js';
import { freshPath, tempDir } from '../../../helpers/tmp.js';
import { tmpfs } from '../../../helpers/tmpfs.js';

// Filesystems we may fill up: 4 MiB of space; and one with space but hardly any inodes.
const disk = tmpfs('size=4m');
const inodes = tmpfs('size=4m,nr_inodes=16');
const base = tempDir();
const MiB = 1 << 20;

async function drain(source: AsyncIterable<Uint8Array> | undefined): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const c of source ?? []) parts.push(c);
  return Buffer.concat(parts);
}

/** Fills the filesystem of `dir` to the last byte (or inode, with `files`). */
function fill(dir: string, how: 'bytes' | 'files'): void {
  if (how === 'files') {
    for (let i = 0; ; i++) {
      try {
        writeFileSync(join(dir, `filler-${i}`), '');
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOSPC') return;
        throw e;
      }
    }
  }
  const fd = openSync(join(dir, 'filler'), 'w');
  const block = Buffer.alloc(64 << 10);
  try {
    for (;;) writeSync(fd, block);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
  } finally {
    closeSync(fd);
  }
}

/**
 * A slow source, as stdin is: each chunk is handed over only once the write of everything before it
 * has finished or failed, and one more turn of the event loop has passed. So the write that meets the
 * full disk fails while the writer is waiting for the source, not for the write.
 */
async function* paced(data: Buffer, writes: WriteWatch): AsyncGenerator<Buffer> {
  for (let at = 0; at < data.length; at += MiB) {
    await writes.until(() => writes.failure !== undefined || writes.end >= at);
    await new Promise((resolve) => setImmediate(resolve));
    yield data.subarray(at, at + MiB);
  }
}

describe.skipIf(!disk)('a disk that fills up', () => {
  const mount = disk as string;
  let root: string;
  const unhandled: unknown[] = [];
  const onUnhandled = (e: unknown) => unhandled.push(e);
  beforeEach(() => {
    root = freshPath(mount);
    unhandled.length = 0;
    process.on('unhandledRejection', onUnhandled);
  });
  afterEach(() => {
    process.off('unhandledRejection', onUnhandled);
    // Empty the mount for the next test (the mount point itself stays).
    for (const entry of readdirSync(mount)) rmSync(join(mount, entry), { recursive: true, force: true });
  });

  it.each([
    ['an async iterable', (src: AsyncIterable<Uint8Array>) => src],
    ['a Node Readable', (src: AsyncIterable<Uint8Array>) => Readable.from(src)],
    [
      'a web ReadableStream',
      (src: AsyncIterable<Uint8Array>) => Readable.toWeb(Readable.from(src)) as ReadableStream<Uint8Array>,
    ],
  ])(
    '%s of unknown size that meets it midway is refused (not a crash), handed back whole, no temp file left',
    async (_name, make) => {
      const storage = new HashKeyStorage(new DiskLocation(root));
      const data = pseudoRandom('fills the disk', 10 * MiB);
      const writes = await watchWrites();
      let err: unknown;
      try {
        err = await storage.write(make(paced(data, writes))).catch((e: unknown) => e);
      } finally {
        writes.restore();
      }
      expect(writes.failure?.code).toBe('ENOSPC'); // the disk really filled up under a write
      expect(unhandled).toEqual([]);
      expect(err).toBeInstanceOf(RefusedError);
      expect((err as RefusedError).code).toBe('TARN_REFUSED');
      expect((await drain((err as RefusedError).source())).equals(data)).toBe(true);
      expect(readdirSync(join(root, '.tmp'))).toEqual([]);
      expect(await storage.contains(sha256(data))).toBe(false);
    },
  );

  it('a path and a buffer that do not fit are refused, no temp file left', async () => {
    const storage = new HashKeyStorage(new DiskLocation(root));
    const data = pseudoRandom('too big', 10 * MiB);
    const file = join(base, 'too-big.bin');
    writeFileSync(file, data);
    for (const source of [data, file]) {
      const err = await storage.write(source).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RefusedError);
      // The caller still has the buffer or the file: nothing to hand back.
      expect((err as RefusedError).source()).toBeUndefined();
      expect(readdirSync(join(root, '.tmp'))).toEqual([]);
    }
  });

  it('a value already stored is `existed` on a full disk (buffer, path, stream); a new one is refused', async () => {
    const storage = new HashKeyStorage(new DiskLocation(root));
    const data = pseudoRandom('stored before the disk filled', MiB + 5);
    const key = await storage.write(data);
    fill(mount, 'bytes');
    const file = join(base, 'stored.bin');
    writeFileSync(file, data);
    expect(await storage.write(data)).toBe(key);
    expect(await storage.write(file)).toBe(key);
    expect(await storage.write(chunks(data))).toBe(key);
    expect(await storage.write(Readable.from(chunks(data, 4096)))).toBe(key);
    expect(await storage.write(chunks(data), { expectedKey: key })).toBe(key);

    const other = pseudoRandom('new value', MiB);
    const err = (await storage.write(chunks(other)).catch((e: unknown) => e)) as RefusedError;
    expect(err).toBeInstanceOf(RefusedError);
    expect((await drain(err.source())).equals(other)).toBe(true);
    expect(readdirSync(join(root, key.slice(0, 2)))).toEqual([key.slice(2)]);
    expect(readdirSync(join(root, '.tmp'))).toEqual([]);
  });
});

describe.skipIf(!inodes)('a disk out of inodes', () => {
  const mount = inodes as string;

  it('refuses a new value before any byte moves, and a stored one is `existed`', async () => {
    const root = freshPath(mount);
    const storage = new HashKeyStorage(new DiskLocation(root));
    const key = await storage.write(Buffer.from('stored first'));
    fill(mount, 'files');
    expect(await storage.write(Buffer.from('stored first'))).toBe(key);
    expect(await storage.write(chunks(Buffer.from('stored first')))).toBe(key);
    await expect(storage.write(Buffer.from('new'))).rejects.toBeInstanceOf(RefusedError);
    const err = (await storage
      .write(chunks(Buffer.from('new stream')))
      .catch((e: unknown) => e)) as RefusedError;
    expect(err).toBeInstanceOf(RefusedError);
    expect((await drain(err.source())).toString()).toBe('new stream');
    expect(readdirSync(join(root, '.tmp'))).toEqual([]);
  });
});

describe('fsync reporting a full disk (as thin-provisioned and network disks do)', () => {
  const enospc = () => Object.assign(new Error('ENOSPC: no space left on device, fsync'), { code: 'ENOSPC' });

  it('is a refusal, and the bytes are handed back whole', async () => {
    const root = freshPath(base);
    const storage = new HashKeyStorage(new DiskLocation(root, { fsync: true }));
    const data = pseudoRandom('synced into a full disk', 3 * MiB);
    const undo = await hookFileHandle('sync', () => async () => {
      throw enospc();
    });
    let err: unknown;
    try {
      err = await storage.write(chunks(data)).catch((e: unknown) => e);
    } finally {
      undo();
    }
    expect(err).toBeInstanceOf(RefusedError);
    expect((await drain((err as RefusedError).source())).equals(data)).toBe(true);
    expect(readdirSync(join(root, '.tmp'))).toEqual([]);
    expect(await storage.contains(sha256(data))).toBe(false);
  });

  it('a replay that cannot be read back intact fails instead of handing back other bytes', async () => {
    const root = freshPath(base);
    const storage = new HashKeyStorage(new DiskLocation(root, { fsync: true }));
    const data = pseudoRandom('lost by the page cache', 3 * MiB);
    // As if the kernel dropped the pages that failed to reach the disk: the temp file comes back short.
    const undo = await hookFileHandle('sync', () => async () => {
      const [temp] = readdirSync(join(root, '.tmp'));
      truncateSync(join(root, '.tmp', temp as string), MiB);
      throw enospc();
    });
    let err: unknown;
    try {
      err = await storage.write(chunks(data)).catch((e: unknown) => e);
    } finally {
      undo();
    }
    expect(err).toBeInstanceOf(RefusedError);
    await expect(drain((err as RefusedError).source())).rejects.toBeInstanceOf(WriteError);
    expect(readdirSync(join(root, '.tmp'))).toEqual([]);
  });
});
