import { spawn } from 'node:child_process';
import {
  appendFileSync,
  closeSync,
  constants,
  openSync,
  readdirSync,
  symlinkSync,
  truncateSync,
  utimesSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { AbortError, DiskLocation, HashKeyStorage, SourceError } from '@tarnjs/tarn';
import { describe, expect, it } from 'vitest';
import { pseudoRandom, sha256 } from '../helpers/data.js';
import { blobs } from '../helpers/lake.js';
import { fifoIn, freshPath, tempDir } from '../helpers/tmp.js';
import { until } from '../helpers/wait.js';

const base = tempDir();
const tmpEntries = (root: string) => readdirSync(join(root, '.tmp'));

const mkfifo = () => fifoIn(base);

/** True while some process has the FIFO open for reading (a non-blocking open for writing succeeds only then). */
function hasReader(fifo: string): boolean {
  try {
    closeSync(openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK));
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENXIO') return false;
    throw e;
  }
}

describe('a FIFO as a source', () => {
  it('is streamed: a writer that comes later fills it, and its bytes are stored', async () => {
    const root = freshPath(base);
    const storage = new HashKeyStorage(root);
    const data = pseudoRandom('fifo', 3 * (1 << 20) + 5);
    const src = join(base, 'fifo-src.bin');
    writeFileSync(src, data);
    const fifo = mkfifo();
    const write = storage.write(fifo);
    // The writer's open blocks until our reader is there: this proves the reader waits for it.
    const writer = spawn('sh', ['-c', 'cat "$1" > "$2"', 'sh', src, fifo], { stdio: 'ignore' });
    const writerDone = new Promise((r) => writer.on('close', r));
    expect(await write).toBe(sha256(data));
    expect(await writerDone).toBe(0);
    expect(blobs(root)).toEqual([sha256(data)]);
    expect(tmpEntries(root)).toEqual([]);
    await storage.close();
  });

  it('with no writer: the write rejects with AbortError as soon as the signal fires, leaves no temp file, closes the FIFO', async () => {
    const root = freshPath(base);
    const storage = new HashKeyStorage(root);
    const fifo = mkfifo();
    const controller = new AbortController();
    const write = storage.write(fifo, { signal: controller.signal });
    write.catch(() => undefined);
    // The stage's temp file is created after the FIFO is opened: the write is now waiting for bytes.
    // (Probing the FIFO for its reader here would open it for writing: a writer, and the end.)
    await until(() => tmpEntries(root).length > 0, 'the write has its temp file');
    const t0 = performance.now();
    controller.abort(new Error('user cancelled'));
    const err = await write.catch((e: unknown) => e);
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(err).toBeInstanceOf(AbortError);
    expect(tmpEntries(root)).toEqual([]);
    expect(hasReader(fifo)).toBe(false);
    await storage.close();
  });

  it('a writer that opens and closes without writing gives the empty value', async () => {
    const storage = new HashKeyStorage(freshPath(base));
    const fifo = mkfifo();
    const write = storage.write(fifo);
    await until(() => hasReader(fifo), 'the FIFO has a reader');
    // hasReader itself opened and closed it for writing: that is the writer.
    expect(await write).toBe(sha256(''));
    await storage.close();
  });
});

describe('a regular file that changes while it is read', () => {
  const data = pseudoRandom('changing', 8 << 20);

  async function putWhileChanging(change: (file: string) => void) {
    const root = freshPath(base);
    // The one-pass reader (a large file by path is otherwise copied by the kernel: kernel-copy.test.ts).
    const storage = new HashKeyStorage(new DiskLocation(root, { kernelCopy: false }));
    const file = freshPath(base, 'changing.bin');
    writeFileSync(file, data);
    // A modification time in the past, so that any change now is seen even by a coarse clock.
    utimesSync(file, new Date('2001-01-01'), new Date('2001-01-01'));
    let changed = false;
    const err = await storage
      .write(file, {
        onProgress: () => {
          if (changed) return;
          changed = true;
          change(file);
        },
      })
      .catch((e: unknown) => e);
    expect(changed).toBe(true);
    await storage.close();
    return { err, root };
  }

  it('truncated: fails with SourceError, stores nothing (no prefix), leaves no temp file', async () => {
    const { err, root } = await putWhileChanging((file) => truncateSync(file, 1 << 20));
    expect(err).toBeInstanceOf(SourceError);
    expect((err as Error).message).toMatch(/changed while it was read/);
    expect(blobs(root)).toEqual([]);
    expect(tmpEntries(root)).toEqual([]);
  });

  it('grown: fails with SourceError too, stores nothing, leaves no temp file', async () => {
    const { err, root } = await putWhileChanging((file) => appendFileSync(file, 'more'));
    expect(err).toBeInstanceOf(SourceError);
    expect((err as Error).message).toMatch(/changed while it was read/);
    expect(blobs(root)).toEqual([]);
    expect(tmpEntries(root)).toEqual([]);
  });

  it('rewritten in place at the same size: fails with SourceError too', async () => {
    const { err, root } = await putWhileChanging((file) => {
      const fd = openSync(file, 'r+');
      writeSync(fd, Buffer.from('rewritten'), 0, 9, 0);
      closeSync(fd);
    });
    expect(err).toBeInstanceOf(SourceError);
    expect(blobs(root)).toEqual([]);
    expect(tmpEntries(root)).toEqual([]);
  });

  it('unchanged: stored (the checks do not fire on a quiet file)', async () => {
    const { err, root } = await putWhileChanging(() => undefined);
    expect(err).toBe(sha256(data));
    expect(blobs(root)).toEqual([sha256(data)]);
  });
});

describe('a character device as a source', () => {
  it('/dev/null is the empty value', async () => {
    const storage = new HashKeyStorage(freshPath(base));
    expect(await storage.write('/dev/null')).toBe(sha256(''));
    await storage.close();
  });

  it('reached through a link in a local folder (opened on the calling thread): read by the general path', async () => {
    const storage = new HashKeyStorage(freshPath(base));
    const link = freshPath(base, 'to-dev-null');
    symlinkSync('/dev/null', link);
    expect(await storage.write(link)).toBe(sha256(''));
    await storage.close();
  });
});

describe('small files, read whole on the calling thread where the folder is local', () => {
  it('store their bytes; a missing file and a folder are SourceErrors that store nothing', async () => {
    const root = freshPath(base);
    const storage = new HashKeyStorage(root);
    const file = freshPath(base, 'small');
    writeFileSync(file, 'small');
    expect(await storage.put(file)).toEqual({ key: sha256('small'), size: 5, status: 'stored' });
    await expect(storage.write(`${file}.missing`)).rejects.toBeInstanceOf(SourceError);
    await expect(storage.write(base)).rejects.toThrow(/is a directory/);
    expect(blobs(root)).toEqual([sha256('small')]);
    expect(tmpEntries(root)).toEqual([]);
    await storage.close();
  });
});
