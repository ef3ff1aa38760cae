import { spawn } from 'node:child_process';
import { chmodSync, existsSync, readdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import {
  AbortError,
  ConfigError,
  DiskLocation,
  HashKeyStorage,
  KeyMismatchError,
  Levels,
  NotFoundError,
  RedisLocation,
  SourceError,
  StorageCorruption,
} from '@tarnjs/tarn';
import { describe, expect, it } from 'vitest';
import { pseudoRandom, sha256 } from '../helpers/data.js';
import { blobs, lakeFiles } from '../helpers/lake.js';
import { freshPath, tempDir } from '../helpers/tmp.js';

const base = tempDir();
const tmpEntries = (root: string) => readdirSync(join(root, '.tmp'));

describe('HashKeyStorage.write', () => {
  const root = freshPath(base);
  const storage = new HashKeyStorage(root);
  const data = pseudoRandom('write', 3 * (1 << 20) + 17);
  const key = sha256(data);

  async function* chunks(buf: Buffer, size: number) {
    for (let i = 0; i < buf.length; i += size) yield buf.subarray(i, i + size);
  }

  it.each([
    ['a Buffer', () => data],
    ['a Uint8Array', () => new Uint8Array(data)],
    [
      'a file path',
      () => {
        const file = join(base, 'source.bin');
        writeFileSync(file, data);
        return file;
      },
    ],
    ['a Node Readable', () => Readable.from(chunks(data, 65536))],
    [
      'a web ReadableStream',
      () => Readable.toWeb(Readable.from(chunks(data, 100_000))) as ReadableStream<Uint8Array>,
    ],
    ['an AsyncIterable of odd-sized chunks', () => chunks(data, 4097)],
  ])('stores %s under the sha256 of its bytes', async (_name, make) => {
    expect(await storage.write(make())).toBe(key);
    expect(readFileSync(new DiskLocation(root).pathOf(key)).equals(data)).toBe(true);
    expect(tmpEntries(root)).toEqual([]);
  });

  it('hashes a non-seekable pipe in one pass', async () => {
    const cat = spawn('cat', [], { stdio: ['pipe', 'pipe', 'inherit'] });
    cat.stdin.end(data);
    expect(await storage.write(cat.stdout)).toBe(key);
  });

  it('stores the empty value', async () => {
    const k = await storage.write(Buffer.alloc(0));
    expect(k).toBe(sha256(''));
    expect(await storage.read(k, (v) => v.size)).toBe(0);
    expect(await storage.write(chunks(Buffer.alloc(0), 1))).toBe(k);
  });

  it('keeps one copy of a value written twice', async () => {
    const lake = freshPath(base);
    const twice = new HashKeyStorage(lake);
    const k1 = await twice.write(Buffer.from('twice'));
    const k2 = await twice.write(Buffer.from('twice'));
    const k3 = await twice.write(chunks(Buffer.from('twice'), 2));
    expect(new Set([k1, k2, k3])).toEqual(new Set([sha256('twice')]));
    // Every file of the lake: the one blob, and no second copy anywhere (temp file, another name).
    expect(lakeFiles(lake)).toEqual([join(k1.slice(0, 2), k1.slice(2))]);
  });

  it('with expectedKey: a mismatch stores nothing and says which key the bytes have', async () => {
    const wrong = sha256('something else');
    const err = await storage
      .write(chunks(Buffer.from('payload'), 3), { expectedKey: wrong })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KeyMismatchError);
    expect((err as KeyMismatchError).actual).toBe(sha256('payload'));
    expect(await storage.contains(sha256('payload'))).toBe(false);
    expect(await storage.contains(wrong)).toBe(false);
    expect(tmpEntries(root)).toEqual([]);
    await expect(storage.write(Buffer.from('payload'), { expectedKey: wrong })).rejects.toBeInstanceOf(
      KeyMismatchError,
    );
    expect(await storage.write(Buffer.from('payload'), { expectedKey: sha256('payload') })).toBe(
      sha256('payload'),
    );
  });

  it('a source that fails midway stores nothing', async () => {
    async function* broken() {
      yield Buffer.from('first part');
      throw new Error('network dropped');
    }
    const err = await storage.write(broken()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SourceError);
    expect((err as Error).message).toMatch(/network dropped/);
    expect(await storage.contains(sha256('first part'))).toBe(false);
    expect(tmpEntries(root)).toEqual([]);
  });

  it('rejects chunks that are not bytes', async () => {
    async function* strings() {
      yield 'text' as unknown as Uint8Array;
    }
    await expect(storage.write(strings())).rejects.toBeInstanceOf(SourceError);
    await expect(storage.write(42 as unknown as Buffer)).rejects.toBeInstanceOf(SourceError);
    await expect(storage.write(join(base, 'missing-file'))).rejects.toThrow(/cannot open/);
  });

  it('an aborted write leaves nothing behind', async () => {
    const controller = new AbortController();
    async function* endless() {
      for (let i = 0; ; i++) {
        if (i === 3) controller.abort(new Error('user cancelled'));
        yield pseudoRandom(`endless${i}`, 1 << 20);
      }
    }
    await expect(storage.write(endless(), { signal: controller.signal })).rejects.toBeInstanceOf(AbortError);
    expect(tmpEntries(root)).toEqual([]);
    await expect(storage.write(data, { signal: AbortSignal.abort() })).rejects.toBeInstanceOf(AbortError);
  });

  it('reports progress', async () => {
    const seen: number[] = [];
    await storage.write(chunks(data, 1 << 20), { onProgress: (n) => seen.push(n) });
    expect(seen.at(-1)).toBe(data.length);
  });
});

describe('HashKeyStorage.read', () => {
  const root = freshPath(base);
  const storage = new HashKeyStorage(root);

  it('gives a local path, a stream and the bytes', async () => {
    const data = pseudoRandom('read', 200_000);
    const key = await storage.write(data);
    {
      await using value = await storage.read(key);
      expect(value.key).toBe(key);
      expect(value.size).toBe(data.length);
      expect(value.path).toBe(join(root, key.slice(0, 2), key.slice(2)));
      expect(readFileSync(value.path as string).equals(data)).toBe(true);
      expect((await value.bytes()).equals(data)).toBe(true);
      const parts: Buffer[] = [];
      for await (const c of value.stream()) parts.push(c as Buffer);
      expect(Buffer.concat(parts).equals(data)).toBe(true);
    }
    expect(await storage.read(key, (v) => v.bytes().then((b) => b.length))).toBe(data.length);
  });

  it('verify: small values are checked before read returns; large ones show their path once verified', async () => {
    const small = await storage.write(Buffer.from('small'));
    {
      await using v = await storage.read(small, { verify: true });
      expect(v.path).toBeDefined();
    }
    // A corrupt small value: read itself fails, so no caller ever gets its path or bytes.
    const rotten = await storage.write(Buffer.from('small, soon rotten'));
    const rottenPath = new DiskLocation(root).pathOf(rotten);
    chmodSync(rottenPath, 0o644);
    writeFileSync(rottenPath, 'small, now rotten!');
    const err = await storage.read(rotten, { verify: true }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StorageCorruption);
    expect((err as StorageCorruption).actual).toBe(sha256('small, now rotten!'));
    expect(existsSync(rottenPath)).toBe(false);
    const big = pseudoRandom('big', 3 << 20);
    const key = await storage.write(big);
    await using v = await storage.read(key, { verify: true });
    expect(v.path).toBeUndefined();
    const parts: Buffer[] = [];
    for await (const c of v.stream()) parts.push(c as Buffer);
    expect(Buffer.concat(parts).equals(big)).toBe(true);
    expect(v.path).toBe(join(root, key.slice(0, 2), key.slice(2)));
  });

  it('an open value stays readable when the key is deleted meanwhile', async () => {
    const key = await storage.write(Buffer.from('still here'));
    await using v = await storage.read(key);
    expect(await storage.delete(key)).toBe(true);
    expect(await v.text()).toBe('still here');
  });

  it('a missing key is a NotFoundError, or null with readOrNull', async () => {
    const missing = sha256('never written');
    const err = await storage.read(missing).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NotFoundError);
    expect((err as NotFoundError).key).toBe(missing);
    expect(await storage.readOrNull(missing)).toBeNull();
    expect(await storage.read(missing, { missing: 'null' })).toBeNull();
  });

  it('verify: a corrupt blob raises StorageCorruption and is quarantined, then a rewrite repairs it', async () => {
    const data = Buffer.from('precious bytes');
    const key = await storage.write(data);
    const lake = new DiskLocation(root);
    const path = lake.pathOf(key);
    // Damage the blob in place (same size), as a bad disk would.
    chmodSync(path, 0o644);
    writeFileSync(path, Buffer.from('PRECIOUS BYTES'));
    chmodSync(path, 0o444);

    // Without verification the bytes are served as they are.
    expect(await storage.read(key, (v) => v.text())).toBe('PRECIOUS BYTES');
    const err = await storage.read(key, { verify: true }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StorageCorruption);
    expect((err as StorageCorruption).actual).toBe(sha256('PRECIOUS BYTES'));
    const to = (err as StorageCorruption).quarantinedTo as string;
    expect(to).toContain(join(root, 'tools', 'quarantine', key));
    expect(readFileSync(to, 'utf8')).toBe('PRECIOUS BYTES');
    expect(await storage.contains(key)).toBe(false);

    expect(await storage.write(data)).toBe(key);
    expect(await storage.read(key, (v) => v.text(), { verify: true })).toBe('precious bytes');
  });

  it('verify on a stream fails at the end of the stream', async () => {
    const key = await storage.write(Buffer.from('stream me'));
    const lake = new DiskLocation(root);
    // A location that serves damaged bytes without a local path: the check runs on the stream.
    const s2 = new HashKeyStorage({
      ...lakeMethods(lake),
      read: async (k: string) => {
        const v = await lake.read(k);
        return (
          v && {
            size: v.size,
            stream: () => Readable.from([Buffer.from('stream ME')]),
            close: () => v.close(),
          }
        );
      },
    });
    await expect(s2.read(key, (v) => v.bytes(), { verify: true })).rejects.toBeInstanceOf(StorageCorruption);
  });
});

function lakeMethods(lake: DiskLocation) {
  return {
    kind: lake.kind,
    target: lake.target,
    read: lake.read.bind(lake),
    stage: lake.stage.bind(lake),
    contains: lake.contains.bind(lake),
    delete: lake.delete.bind(lake),
    keys: lake.keys.bind(lake),
    touch: lake.touch.bind(lake),
    quarantine: lake.quarantine.bind(lake),
    close: lake.close.bind(lake),
  };
}

describe('HashKeyStorage: contains, delete, keys, fetch, verify', () => {
  const root = freshPath(base);
  const storage = new HashKeyStorage(root);

  it('lists, checks and deletes keys', async () => {
    const keys = await Promise.all(['a', 'b', 'c'].map((s) => storage.write(Buffer.from(s))));
    const listed: string[] = [];
    for await (const k of storage.keys()) listed.push(k);
    expect(listed.sort()).toEqual([...keys].sort());
    expect(await storage.delete(keys[0] as string)).toBe(true);
    expect(await storage.delete(keys[0] as string)).toBe(false);
    expect(await storage.contains(keys[0] as string)).toBe(false);
    expect(await storage.contains(keys[1] as string)).toBe(true);
  });

  it('fetch reports which keys are present', async () => {
    const k = await storage.write(Buffer.from('fetch me'));
    const out = [];
    for await (const r of storage.fetch([k, sha256('absent')])) out.push(r);
    expect(out).toEqual([
      { key: k, present: true },
      { key: sha256('absent'), present: false },
    ]);
  });

  it('verify re-hashes everything and quarantines what is corrupt', async () => {
    const good = await storage.write(Buffer.from('good'));
    const bad = await storage.write(Buffer.from('bad!'));
    const path = new DiskLocation(root).pathOf(bad);
    chmodSync(path, 0o644);
    writeFileSync(path, 'evil');
    const report = await storage.verify();
    expect(report.corrupt.map((c) => c.key)).toEqual([bad]);
    expect(report.corrupt[0]?.actual).toBe(sha256('evil'));
    expect(await storage.contains(bad)).toBe(false);
    expect(await storage.contains(good)).toBe(true);
    expect((await storage.verify()).corrupt).toEqual([]);
  });
});

describe('HashKeyStorage.verify over a tree', () => {
  const blobPath = (lake: string, key: string) => join(lake, key.slice(0, 2), key.slice(2));
  function rot(lake: string, key: string, bytes: string): void {
    chmodSync(blobPath(lake, key), 0o644);
    writeFileSync(blobPath(lake, key), bytes);
  }
  /** A temp file no live writer owns (Python tarn's, say), a day old: housekeeping removes it. */
  function staleTemp(lake: string): string {
    // Python tarn names its temp files <key hex><8 random letters>.
    const path = join(lake, '.tmp', `${sha256('half a value')}qwertyui`);
    writeFileSync(path, 'half a value');
    const dayAgo = new Date(Date.now() - 48 * 3600_000);
    utimesSync(path, dayAgo, dayAgo);
    return path;
  }

  it('checks every copy in every lake: a corrupt lower copy under a good top copy is found, and quarantined there only', async () => {
    const [top, bottom] = [freshPath(base), freshPath(base)];
    const key = await new HashKeyStorage(bottom).write(Buffer.from('kept twice'));
    const storage = new HashKeyStorage(new Levels(top, bottom));
    expect(await storage.read(key, (v) => v.text())).toBe('kept twice'); // copied up
    rot(bottom, key, 'rotten below');
    const report = await storage.verify();
    expect(report.checked).toBe(2);
    expect(report.corrupt).toEqual([
      {
        key,
        actual: sha256('rotten below'),
        where: `disk ${bottom}`,
        quarantinedTo: expect.stringContaining(join(bottom, 'tools', 'quarantine', key)),
      },
    ]);
    expect(readFileSync(blobPath(top, key), 'utf8')).toBe('kept twice');
    expect(existsSync(blobPath(bottom, key))).toBe(false);
    expect(report.failed).toEqual([]);
  });

  it('checks both copies of a Fanout, and finds the corrupt one behind a good one', async () => {
    const [a, b] = [freshPath(base), freshPath(base)];
    const key = await new HashKeyStorage(a).write(Buffer.from('in both members'));
    await new HashKeyStorage(b).write(Buffer.from('in both members'));
    rot(b, key, 'rotten in b');
    const report = await new HashKeyStorage([a, b]).verify();
    expect(report.checked).toBe(2);
    expect(report.corrupt.map((c) => [c.key, c.where])).toEqual([[key, `disk ${b}`]]);
    expect([blobs(a), blobs(b)]).toEqual([[key], []]);
  });

  it('is not a use: it copies nothing up into cache levels', async () => {
    const [top, bottom] = [freshPath(base), freshPath(base)];
    const key = await new HashKeyStorage(bottom).write(Buffer.from('only below'));
    const levels = new Levels(top, bottom);
    const report = await new HashKeyStorage(levels).verify();
    expect(report.checked).toBe(1);
    expect(blobs(top)).toEqual([]);
    // Nor does a read that says it is housekeeping.
    await (await levels.read(key, { touch: false }))?.close();
    expect(blobs(top)).toEqual([]);
    expect(levels.stats.copies).toEqual({});
  });

  it("runs every lake's housekeeping, nested ones too, and reports it per lake", async () => {
    const [top, a, b] = [freshPath(base), freshPath(base), freshPath(base)];
    const storage = new HashKeyStorage(new Levels(top, [a, b]));
    await storage.write(Buffer.from('makes the lakes'));
    const stale = [top, a, b].map(staleTemp);
    const report = await storage.verify();
    expect(stale.filter((p) => existsSync(p))).toEqual([]);
    expect(report.housekeeping).toEqual(
      [top, a, b].map((lake) => ({ where: `disk ${lake}`, done: { tempFilesRemoved: 1 } })),
    );
  });

  it('reports a lake it cannot read, and verifies the others', async () => {
    const disk = freshPath(base);
    const key = await new HashKeyStorage(disk).write(Buffer.from('on the disk'));
    const down = new RedisLocation({ url: 'redis://127.0.0.1:1', connectTimeoutMs: 200 });
    const storage = new HashKeyStorage(new Levels(down, disk, { onFault: () => undefined }));
    try {
      const report = await storage.verify();
      expect(report.checked).toBe(1);
      expect(report.failed).toEqual([{ where: `redis ${down.target}`, message: expect.any(String) }]);
      expect(await storage.contains(key)).toBe(true);
    } finally {
      await storage.close();
    }
  });
});

describe('algorithms', () => {
  it.each([
    ['sha512', 128],
    ['blake2b512', 128],
  ])('%s keys have %d hex characters and the lake records the digest', async (algorithm, length) => {
    const root = freshPath(base, algorithm);
    const storage = new HashKeyStorage(root, { algorithm });
    const key = await storage.write(Buffer.from('hello'));
    expect(key).toHaveLength(length);
    expect(await storage.read(key, (v) => v.text())).toBe('hello');
    // Reopened without naming the digest, the lake's config.yml supplies it.
    expect(new HashKeyStorage(root).algorithm).toBe(algorithm);
    expect(() => new HashKeyStorage(root, { algorithm: 'sha256' })).toThrow(ConfigError);
  });

  it('reaches the lakes of a tree given as paths and arrays, and must agree with every lake in it', async () => {
    const [a, b] = [freshPath(base), freshPath(base)];
    const storage = new HashKeyStorage([a, [b]], { algorithm: 'sha512' });
    const key = await storage.write(Buffer.from('in a fanout'));
    expect(key).toHaveLength(128);
    expect(new HashKeyStorage(a).algorithm).toBe('sha512');
    expect(new HashKeyStorage(b).algorithm).toBe('sha512');
    // Without naming it, the tree's lakes supply it; a lake deep in the tree that disagrees is an error.
    expect(new HashKeyStorage([a, b]).algorithm).toBe('sha512');
    const other = new DiskLocation(freshPath(base), { algorithm: 'sha384' });
    expect(() => new HashKeyStorage([a, other])).toThrow(/records sha512 but disk .* records sha384/);
  });
});
