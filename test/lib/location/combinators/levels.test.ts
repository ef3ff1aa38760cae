import { chmodSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  ConfigError,
  DiskLocation,
  Fanout,
  HashKeyStorage,
  Level,
  type LevelFault,
  Levels,
  type OpOptions,
  PartialDeleteError,
  RedisLocation,
  Small,
  type Stage,
  type StageOptions,
  StorageCorruption,
} from '@tarnjs/tarn';
import { Redis as Client } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { available } from '../../../bed/index.js';
import { type Redis, startRedis } from '../../../bed/services.js';
import { pseudoRandom, sha256 } from '../../../helpers/data.js';
import { blobs, chunks, lakeFiles, lakeObjects } from '../../../helpers/lake.js';
import { tarn } from '../../../helpers/spawn.js';
import { freshPath, tempDir } from '../../../helpers/tmp.js';
import { conformance } from '../conformance.js';

const base = tempDir();
const blobPath = (root: string, key: string) => join(root, key.slice(0, 2), key.slice(2));
function corrupt(root: string, key: string, bytes: string): void {
  const path = blobPath(root, key);
  chmodSync(path, 0o644);
  writeFileSync(path, bytes);
  chmodSync(path, 0o444);
}

/** A real location whose touches are counted, to see what the hierarchy tells lower levels. */
class Touches extends DiskLocation {
  touched: string[] = [];
  override async touch(key: string, options?: OpOptions): Promise<boolean> {
    this.touched.push(key);
    return super.touch(key, options);
  }
}

/** A real lake whose commits fail, as on a disk that turned read-only under the writer. */
class FailingCommits extends DiskLocation {
  override async stage(options?: StageOptions): Promise<Stage | null> {
    const stage = await super.stage(options);
    if (!stage) return stage;
    return {
      push: (chunk) => stage.push(chunk),
      commit: async () => {
        await stage.abort();
        throw new Error('EROFS: read-only file system');
      },
      reclaim: () => stage.reclaim(),
      abort: () => stage.abort(),
    };
  }
}

conformance('levels of two disks', async () => {
  const [top, bottom] = [freshPath(base), freshPath(base)];
  return {
    location: new Levels(new DiskLocation(top), new DiskLocation(bottom)),
    objects: async () => [...lakeObjects(top), ...lakeObjects(bottom)],
  };
});

describe('Levels', () => {
  it('copies a lower hit into the level above (copy-on-read) and serves the copy', async () => {
    const [fresh, old] = [freshPath(base, 'new-hdd'), freshPath(base, 'old-hdd')];
    const data = pseudoRandom('migrated', 3 << 20);
    const key = await new HashKeyStorage(old).write(data);
    // As in the original README: lazily replicate an old storage to a new location.
    const storage = new HashKeyStorage(new Levels(fresh, old));
    expect(blobs(fresh)).toEqual([]);
    const path = await storage.read(key, (v) => v.path);
    expect(path).toBe(blobPath(fresh, key));
    // The copy in the upper level has the key's bytes (checked byte for byte and by digest).
    const copied = readFileSync(blobPath(fresh, key));
    expect(copied.equals(data)).toBe(true);
    expect(sha256(copied)).toBe(key);
    expect(blobs(fresh)).toEqual([key]);
    expect(readdirSync(join(fresh, '.tmp'))).toEqual([]);
    const levels = storage.location as Levels;
    expect(levels.stats.copies).toEqual({ '0 disk': 1 });
    // Now the upper level answers by itself.
    expect((await storage.read(key, (v) => v.bytes())).equals(data)).toBe(true);
    expect(levels.stats.hits).toEqual({ '0 disk': 1, '1 disk': 1 });
  });

  it('writes only to write levels; reads fill every replicate level above the hit', async () => {
    const [ssd, hdd, nfs] = [freshPath(base, 'ssd'), freshPath(base, 'hdd'), freshPath(base, 'nfs')];
    // The lab setup of the original README.
    const storage = new HashKeyStorage(
      new Levels(new Level(ssd, { write: false }), new Level(hdd, { write: false }), nfs),
    );
    const key = await storage.write(Buffer.from('written to nfs only'));
    expect([blobs(ssd), blobs(hdd), blobs(nfs)]).toEqual([[], [], [key]]);
    expect(await storage.read(key, (v) => v.text())).toBe('written to nfs only');
    expect([blobs(ssd), blobs(hdd), blobs(nfs)]).toEqual([[key], [key], [key]]);
  });

  it("with copies: 'first', only the top-most accepting level gets the copy, as in Python tarn", async () => {
    const [ssd, hdd, nfs] = [freshPath(base), freshPath(base), freshPath(base)];
    const key = await new HashKeyStorage(nfs).write(Buffer.from('one copy'));
    const storage = new HashKeyStorage(new Levels(ssd, hdd, nfs, { copies: 'first' }));
    await storage.read(key, (v) => v.text());
    expect([blobs(ssd), blobs(hdd)]).toEqual([[key], []]);
  });

  it('skips a level that refuses the copy and still fills the one below it', async () => {
    const [ssd, hdd, nfs] = [freshPath(base), freshPath(base), freshPath(base)];
    const data = pseudoRandom('too large for the top', 2 << 20);
    const key = await new HashKeyStorage(nfs).write(data);
    const storage = new HashKeyStorage(
      new Levels(new Small(new DiskLocation(ssd), { maxSize: 1 << 20 }), hdd, nfs),
    );
    expect((await storage.read(key, (v) => v.bytes())).equals(data)).toBe(true);
    expect([blobs(ssd), blobs(hdd)]).toEqual([[], [key]]);
  });

  it('tells lower touch levels about a read served above them', async () => {
    const [top, bottom] = [freshPath(base), freshPath(base)];
    const lower = new Touches(bottom);
    const storage = new HashKeyStorage(new Levels(top, new Level(lower, { touch: true })));
    const key = await storage.write(Buffer.from('used often'));
    await storage.read(key, (v) => v.text());
    await new HashKeyStorage(top).write(Buffer.from('only on top'));
    await storage.read(sha256(Buffer.from('only on top')), (v) => v.text());
    expect(lower.touched).toEqual([key, sha256(Buffer.from('only on top'))]);
    expect(await storage.touch(key)).toBe(true);
  });

  it('a write goes to the first write level that accepts, even after a midway refusal', async () => {
    const [a, b] = [freshPath(base), freshPath(base)];
    const storage = new HashKeyStorage(new Levels(new DiskLocation(a, { maxSize: 1 << 20 }), b));
    const data = pseudoRandom('overflows the top', 3 << 20);
    const key = await storage.write(chunks(data));
    expect([blobs(a), blobs(b)]).toEqual([[], [key]]);
    // A key a write level holds is not written again.
    expect(await storage.write(data)).toBe(key);
    expect(blobs(a)).toEqual([]);
  });

  it('a delete removes the key from every level, caches included', async () => {
    const [ssd, nfs] = [freshPath(base), freshPath(base)];
    const storage = new HashKeyStorage(new Levels(new Level(ssd, { write: false }), nfs));
    const key = await storage.write(Buffer.from('to be deleted'));
    await storage.read(key, (v) => v.text());
    expect(blobs(ssd)).toEqual([key]);
    expect(await storage.delete(key)).toBe(true);
    expect([blobs(ssd), blobs(nfs)]).toEqual([[], []]);
    expect(await storage.contains(key)).toBe(false);
    expect(await storage.readOrNull(key)).toBeNull();
  });

  it('a write level that fails to store is passed over when its stage hands the bytes back', async () => {
    const [broken, good] = [freshPath(base), freshPath(base)];
    const faults: LevelFault[] = [];
    // Small keeps the bytes in memory, so after the failed commit they go on to the next level.
    const levels = new Levels(new Small(new FailingCommits(broken), 1 << 20), good, {
      onFault: (f) => faults.push(f),
    });
    const storage = new HashKeyStorage(levels);
    const keys = [
      await storage.write(Buffer.from('bytes, over a broken level')),
      await storage.write(chunks(Buffer.from('a stream, over a broken level'), 4)),
    ];
    expect([blobs(broken), blobs(good)]).toEqual([[], keys.sort()]);
    expect(faults.map((f) => [f.level, f.op, f.error.message])).toEqual([
      ['0 small', 'write', 'EROFS: read-only file system'],
      ['0 small', 'write', 'EROFS: read-only file system'],
    ]);
    // A disk's own stage cannot hand its bytes back after a failed commit: the write fails, whole.
    const direct = new HashKeyStorage(
      new Levels(new FailingCommits(freshPath(base)), freshPath(base), { onFault: () => undefined }),
    );
    await expect(direct.write(Buffer.from('nowhere to go'))).rejects.toThrow('EROFS');
  });

  it('a delete that fails on one level says what it deleted where, and what failed', async () => {
    const disk = freshPath(base);
    const key = await new HashKeyStorage(disk).write(Buffer.from('to be deleted while redis is down'));
    // Nothing listens on port 1: the Redis level fails at once.
    const down = new RedisLocation({ url: 'redis://127.0.0.1:1', connectTimeoutMs: 200 });
    const top = new Small(down, 1024);
    const storage = new HashKeyStorage(new Levels(top, disk, { onFault: () => undefined }));
    try {
      const err = (await storage.delete(key).catch((e: unknown) => e)) as PartialDeleteError;
      expect(err).toBeInstanceOf(PartialDeleteError);
      expect(err.code).toBe('TARN_PARTIAL_DELETE');
      expect(err.deleted).toEqual([`disk ${disk}`]);
      expect(err.failed).toEqual([
        { where: `small ${top.target}`, message: expect.stringContaining('redis') },
      ]);
      expect(err.message).toContain(`deleted from disk ${disk}`);
      expect(err.message).toContain(`failed on small ${top.target}`);
      expect(blobs(disk)).toEqual([]);
    } finally {
      await storage.close();
    }
  });

  it('tarn rm through Levels says what it deleted where, and what failed', async () => {
    const dir = freshPath(base, 'rm');
    const lake = join(dir, 'lake');
    const key = await new HashKeyStorage(lake).write(Buffer.from('rm me'));
    const cfg = join(dir, 'tarn.yaml');
    writeFileSync(
      cfg,
      `location:\n  kind: levels\n  levels:\n    - { kind: redis, url: 'redis://127.0.0.1:1', connectTimeoutMs: 200 }\n    - lake\n`,
    );
    const r = await tarn(['--storage', cfg, 'rm', key]);
    expect(r.stderr).toContain(`deleted from disk ${lake}`);
    expect(r.stderr).toContain('failed on redis redis://127.0.0.1:1');
    expect(r.stderr).not.toMatch(/^\s+at /m);
    expect(r.code).not.toBe(0);
    expect(blobs(lake)).toEqual([]);
  });

  it('lists every key once, whichever levels hold it', async () => {
    const [top, bottom] = [freshPath(base), freshPath(base)];
    const storage = new HashKeyStorage(new Levels(top, bottom));
    const both = await new HashKeyStorage(bottom).write(Buffer.from('both'));
    await storage.read(both, (v) => v.text());
    const onlyBottom = await new HashKeyStorage(bottom).write(Buffer.from('bottom'));
    const listed: string[] = [];
    for await (const k of storage.keys()) listed.push(k);
    expect(listed.sort()).toEqual([both, onlyBottom].sort());
  });

  it('a corrupt copy in an upper level is removed there and served again from below', async () => {
    const [top, bottom] = [freshPath(base), freshPath(base)];
    const data = Buffer.from('the good bytes');
    const key = await new HashKeyStorage(bottom).write(data);
    const faults: LevelFault[] = [];
    const storage = new HashKeyStorage(new Levels(top, bottom, { onFault: (f) => faults.push(f) }));
    await storage.read(key, (v) => v.text());
    corrupt(top, key, 'rotten bytes!!');
    // A verified read notices, quarantines the top copy only, and serves (and re-copies) the lower one.
    expect((await storage.read(key, (v) => v.bytes(), { verify: true })).equals(data)).toBe(true);
    expect(readFileSync(blobPath(top, key)).equals(data)).toBe(true);
    expect(readFileSync(blobPath(bottom, key)).equals(data)).toBe(true);
    expect(readdirSync(join(top, 'tools', 'quarantine')).length).toBe(1);
  });

  it('a corrupt lower copy is never copied up; the next level down serves', async () => {
    const [a, b, c] = [freshPath(base), freshPath(base), freshPath(base)];
    const data = Buffer.from('kept in two places');
    const key = await new HashKeyStorage(b).write(data);
    await new HashKeyStorage(c).write(data);
    corrupt(b, key, 'bit rot in b!!!!!!');
    const faults: LevelFault[] = [];
    const storage = new HashKeyStorage(new Levels(a, b, c, { onFault: (f) => faults.push(f) }));
    expect((await storage.read(key, (v) => v.bytes())).equals(data)).toBe(true);
    expect(readFileSync(blobPath(a, key)).equals(data)).toBe(true);
    expect(blobs(b)).toEqual([key]); // b got its copy back from c: the rotten one is in quarantine
    expect(readFileSync(blobPath(b, key)).equals(data)).toBe(true);
    expect(faults.map((f) => [f.level, f.op])).toEqual([['1 disk', 'corrupt']]);
  });

  it('a large file below is copied up by the kernel, checked against its key; a corrupt one is quarantined', async () => {
    const [top, bottom, spare] = [freshPath(base), freshPath(base), freshPath(base)];
    const data = pseudoRandom('large copy-up', 9 << 20);
    const key = await new HashKeyStorage(bottom).write(data);
    await new HashKeyStorage(spare).write(data);
    const upper = new DiskLocation(top);
    const ingest = upper.ingest.bind(upper);
    const ingested: string[] = [];
    upper.ingest = (path, options) => {
      ingested.push(path);
      return ingest(path, options);
    };
    upper.stage = () => Promise.reject(new Error('a large local file is not streamed into a stage'));
    const levels = new Levels(upper, bottom);
    const storage = new HashKeyStorage(levels);
    expect(sha256(await storage.read(key, (v) => v.bytes()))).toBe(key);
    expect(ingested).toEqual([blobPath(bottom, key)]);
    expect(sha256(readFileSync(blobPath(top, key)))).toBe(key);
    expect(levels.stats.copies).toEqual({ '0 disk': 1 });

    // The same size, other bytes: the kernel copy hashes them, refuses the key, nothing lands above.
    const faults: LevelFault[] = [];
    const [top2] = [freshPath(base)];
    const rotten = Buffer.from(data);
    rotten.writeUInt8(rotten.readUInt8(5 << 20) ^ 1, 5 << 20);
    chmodSync(blobPath(bottom, key), 0o644);
    writeFileSync(blobPath(bottom, key), rotten);
    const again = new HashKeyStorage(new Levels(top2, bottom, spare, { onFault: (f) => faults.push(f) }));
    expect(sha256(await again.read(key, (v) => v.bytes()))).toBe(key);
    expect(faults.map((f) => [f.level, f.op])).toEqual([['1 disk', 'corrupt']]);
    expect(sha256(readFileSync(blobPath(top2, key)))).toBe(key); // from the good copy in `spare`
    expect(sha256(readFileSync(blobPath(bottom, key)))).toBe(key); // the rotten one replaced from below
  });

  it("with copies: 'first', the first level that takes a copy gets it, even when only a later one copies by the kernel", async () => {
    const [a, b, c] = [freshPath(base), freshPath(base), freshPath(base)];
    const data = pseudoRandom('first only', 9 << 20);
    const key = await new HashKeyStorage(c).write(data);
    const first = new DiskLocation(a);
    first.ingest = async () => null; // takes the value only as a stream
    const second = new DiskLocation(b);
    let asked = 0;
    const ingest = second.ingest.bind(second);
    second.ingest = (path, options) => {
      asked++;
      return ingest(path, options);
    };
    const storage = new HashKeyStorage(new Levels(first, second, c, { copies: 'first' }));
    expect(sha256(await storage.read(key, (v) => v.bytes()))).toBe(key);
    expect(sha256(readFileSync(blobPath(a, key)))).toBe(key);
    expect(asked).toBe(0);
    expect(blobs(b)).toEqual([]);
  });

  it('a corrupt value with no good copy anywhere fails with StorageCorruption, not a wrong value', async () => {
    const [top, bottom] = [freshPath(base), freshPath(base)];
    const key = await new HashKeyStorage(bottom).write(Buffer.from('only copy'));
    corrupt(bottom, key, 'only copy but bad');
    const storage = new HashKeyStorage(new Levels(top, new Level(bottom, { replicate: false })));
    await expect(storage.read(key, (v) => v.bytes(), { verify: true })).rejects.toBeInstanceOf(
      StorageCorruption,
    );
    expect(blobs(top)).toEqual([]);
  });

  it('a direct read takes the digest from the lakes: a sha3-256 tree keeps its good blob', async () => {
    const [top, bottom] = [freshPath(base), freshPath(base)];
    const lake = (root: string) => new DiskLocation(root, { algorithm: 'sha3-256' });
    const data = Buffer.from('keyed by sha3-256');
    const key = await new HashKeyStorage(lake(bottom)).write(data);
    const faults: LevelFault[] = [];
    const levels = new Levels(lake(top), lake(bottom), { onFault: (f) => faults.push(f) });
    // No HashKeyStorage, so no digest passed: the lakes' config.yml say sha3-256.
    const value = await levels.read(key);
    const bytes = await value?.bytes?.();
    await value?.close();
    expect(bytes?.equals(data)).toBe(true);
    expect(faults).toEqual([]);
    expect([blobs(top), blobs(bottom)]).toEqual([[key], [key]]);
    expect(existsSync(join(bottom, 'tools', 'quarantine'))).toBe(false);
    // And copies are checked with it: a rotten lower copy is caught, not copied up.
    const other = await new HashKeyStorage(lake(bottom)).write(Buffer.from('soon rotten'));
    corrupt(bottom, other, 'rotten now');
    await expect(levels.read(other)).rejects.toBeInstanceOf(StorageCorruption);
    expect(blobs(top)).toEqual([key]);
  });

  it('with no digest known, a copy is made unchecked rather than a good blob quarantined', async () => {
    const [top, bottom] = [freshPath(base), freshPath(base)];
    const data = Buffer.from('keyed by sha3-256, in lakes that do not say so');
    // Lakes that record no digest (the default), holding sha3-256 keys.
    const key = await new HashKeyStorage(new DiskLocation(bottom), { algorithm: 'sha3-256' }).write(data);
    const faults: LevelFault[] = [];
    const levels = new Levels(top, bottom, { onFault: (f) => faults.push(f) });
    const value = await levels.read(key);
    await value?.close();
    expect(faults).toEqual([]);
    expect([blobs(top), blobs(bottom)]).toEqual([[key], [key]]);
    expect(readFileSync(blobPath(bottom, key)).equals(data)).toBe(true);
  });

  it('refuses lakes that record different digests', () => {
    const sha512 = new DiskLocation(freshPath(base), { algorithm: 'sha512' });
    const sha384 = new DiskLocation(freshPath(base), { algorithm: 'sha384' });
    expect(() => new Levels(sha512, [sha384])).toThrow(ConfigError);
  });

  it('concurrent readers of one key get the same bytes, and the upper level gets one copy', async () => {
    const [top, bottom] = [freshPath(base), freshPath(base)];
    const data = pseudoRandom('popular', 8 << 20);
    const key = await new HashKeyStorage(bottom).write(data);
    // The upper lake, counting the copies started into it.
    const upper = new DiskLocation(top);
    const stage = upper.stage.bind(upper);
    let staged = 0;
    upper.stage = (options) => {
      staged++;
      return stage(options);
    };
    // A large file below is copied up by the kernel (ingest) rather than through a stage.
    const ingest = upper.ingest.bind(upper);
    upper.ingest = (path, options) => {
      staged++;
      return ingest(path, options);
    };
    const levels = new Levels(upper, bottom);
    const storage = new HashKeyStorage(levels);
    const reads = await Promise.all(
      Array.from({ length: 6 }, () => storage.read(key, (v) => v.bytes(), { verify: true })),
    );
    for (const bytes of reads) expect(bytes.equals(data)).toBe(true);
    // One copy made (the other readers waited for it), and one file in the whole upper lake.
    expect(staged).toBe(1);
    expect(levels.stats.copies).toEqual({ '0 disk': 1 });
    expect(lakeFiles(top)).toEqual([join(key.slice(0, 2), key.slice(2))]);
  });

  it('an aborted copy-on-read leaves nothing in the upper level', async () => {
    const [top, bottom] = [freshPath(base), freshPath(base)];
    const data = pseudoRandom('interrupted', 32 << 20);
    const key = await new HashKeyStorage(bottom).write(data);
    const controller = new AbortController();
    // The real lower lake, whose stream pulls the plug after its first chunk.
    const lower = new DiskLocation(bottom);
    const read = lower.read.bind(lower);
    lower.read = async (k, options) => {
      const value = await read(k, options);
      if (!value) return value;
      // No path: the copy goes through the stream (a large file by path is copied by the kernel).
      return {
        size: value.size,
        stream: (o) => value.stream(o).once('data', () => controller.abort(new Error('stop'))),
        close: () => value.close(),
      };
    };
    const storage = new HashKeyStorage(new Levels(top, lower));
    await expect(storage.read(key, (v) => v.bytes(), { signal: controller.signal })).rejects.toMatchObject({
      code: 'TARN_ABORTED',
    });
    expect(blobs(top)).toEqual([]);
    expect(readdirSync(join(top, '.tmp'))).toEqual([]);
    // Nothing was lost below, and a later read copies it whole.
    expect((await storage.read(key, (v) => v.bytes())).equals(data)).toBe(true);
    expect(sha256(readFileSync(blobPath(top, key)))).toBe(key);
  });

  it('reports faults of a level that is down, without flooding the log', async () => {
    const disk = freshPath(base);
    const key = await new HashKeyStorage(disk).write(Buffer.from('served from disk'));
    // Nothing listens on port 1: every lookup in the Redis level fails at once.
    const down = new RedisLocation({ url: 'redis://127.0.0.1:1', connectTimeoutMs: 200 });
    const storage = new HashKeyStorage(new Levels(down, disk));
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => undefined);
    try {
      for (let i = 0; i < 5; i++) expect(await storage.read(key, (v) => v.text())).toBe('served from disk');
      expect((storage.location as Levels).stats.faults['0 redis']).toBeGreaterThanOrEqual(5);
      expect(warn.mock.calls.filter(([line]) => String(line).includes('0 redis: read'))).toHaveLength(1);
    } finally {
      warn.mockRestore();
      await storage.close();
    }
  });

  it('nests: Levels inside a Fanout inside Levels, with plain paths and arrays', async () => {
    const [ssd, hdd1, hdd2, hdd3, old, nfs] = ['ssd', 'hdd1', 'hdd2', 'hdd3', 'old', 'nfs'].map((n) =>
      freshPath(base, n),
    ) as [string, string, string, string, string, string];
    const key = await new HashKeyStorage(old).write(Buffer.from('deep down'));
    const hdd3Lake = new DiskLocation(hdd3);
    const storage = new HashKeyStorage(
      new Levels(
        new Level(ssd, { write: false }),
        // A plain array is a Fanout, as in the original.
        [new DiskLocation(hdd1, { maxSize: 1 }), hdd2, new Levels(hdd3Lake, old)],
        nfs,
      ),
    );
    expect(await storage.read(key, (v) => v.text())).toBe('deep down');
    // The nested Levels copied into hdd3, and the outer one into the SSD above the fanout.
    expect([blobs(ssd), blobs(hdd1), blobs(hdd2), blobs(hdd3)]).toEqual([[key], [], [], [key]]);
    // A write skips the SSD (write: false) and the full first disk of the fanout.
    const written = await storage.write(Buffer.from('new value'));
    expect([blobs(ssd), blobs(hdd1), blobs(hdd2)]).toEqual([[key], [], [written]]);
    expect(blobs(nfs)).toEqual([]);
    expect(storage.location).toBeInstanceOf(Levels);
    expect((storage.location as Levels).levels[1]?.location).toBeInstanceOf(Fanout);
  });
});

describe.runIf(available('redis'))('Levels with Redis', () => {
  let redis: Redis;
  beforeAll(async () => {
    redis = await startRedis();
  }, 60_000);
  afterAll(() => redis?.stop());

  const small = (prefix: string, options: { commandTimeoutMs?: number } = {}) =>
    new Small(new RedisLocation({ url: redis.url, prefix, ...options }), { maxSize: 100 * 1024 });

  conformance('levels of Small(Redis) over a disk', async () => {
    const disk = freshPath(base);
    const raw = new Client(redis.url);
    return {
      location: new Levels(small('conf:'), new DiskLocation(disk)),
      objects: async () => [
        ...(await raw.keysBuffer('conf:*')).map((k) => `conf:${k.subarray(5).toString('hex')}`),
        ...lakeObjects(disk),
      ],
      teardown: async () => raw.disconnect(),
    };
  });

  it('copies small values into Redis on read and leaves large ones on disk', async () => {
    const disk = freshPath(base);
    const top = small('cor:');
    const storage = new HashKeyStorage(new Levels(top, disk));
    const tinyData = Buffer.from('small and hot');
    const bigData = pseudoRandom('large', 300 * 1024);
    const [tiny, big] = [
      await new HashKeyStorage(disk).write(tinyData),
      await new HashKeyStorage(disk).write(bigData),
    ];
    expect(await storage.read(tiny, (v) => v.text())).toBe('small and hot');
    expect((await storage.read(big, (v) => v.bytes())).equals(bigData)).toBe(true);
    expect(await top.contains(tiny)).toBe(true);
    expect(await top.contains(big)).toBe(false);
    // The bytes in Redis are the value's, under its key.
    const fromRedis = await new HashKeyStorage(top).read(tiny, (v) => v.bytes(), { verify: true });
    expect(fromRedis.equals(tinyData)).toBe(true);
    await storage.close();
  });

  it('skips a Redis level that hangs, after its timeout, and reports it', async () => {
    const disk = freshPath(base);
    const faults: LevelFault[] = [];
    const storage = new HashKeyStorage(
      new Levels(new Level(small('hang:'), { timeoutMs: 300 }), disk, { onFault: (f) => faults.push(f) }),
    );
    const key = await storage.write(Buffer.from('x'.repeat(50)));
    const other = await new HashKeyStorage(disk).write(Buffer.from('on disk only'));
    redis.pause();
    try {
      const began = Date.now();
      expect(await storage.read(other, (v) => v.text())).toBe('on disk only');
      expect(Date.now() - began).toBeLessThan(20_000);
      expect(faults.length).toBeGreaterThan(0);
      expect(faults[0]).toMatchObject({ level: '0 small', op: 'read' });
      expect((storage.location as Levels).stats.faults['0 small']).toBe(faults.length);
    } finally {
      redis.resume();
    }
    // Back up: the level serves again.
    expect(await storage.read(key, (v) => v.text())).toBe('x'.repeat(50));
    await storage.close();
  });

  it('a write skips a stopped Redis level: bytes and streams, small and large, land on the disk', async () => {
    const mine = await startRedis();
    const disk = freshPath(base);
    const faults: LevelFault[] = [];
    const top = new Small(new RedisLocation({ url: mine.url, connectTimeoutMs: 500 }), 100 * 1024);
    const levels = new Levels(top, disk, { onFault: (f) => faults.push(f) });
    const storage = new HashKeyStorage(levels);
    try {
      const before = await storage.write(Buffer.from('written while redis is up'));
      expect(await top.contains(before)).toBe(true);
      await mine.stop();
      const values = [
        Buffer.from('small, while redis is down'),
        pseudoRandom('larger than the small level takes', 300 * 1024),
      ];
      const keys: string[] = [];
      for (const data of values) {
        keys.push(await storage.write(data));
        // A stream: its key is known only at its end, after the Redis level took its bytes.
        keys.push(await storage.write(chunks(data, 64 * 1024)));
      }
      expect(keys).toEqual(values.flatMap((d) => [sha256(d), sha256(d)]));
      expect(blobs(disk)).toEqual(values.map((d) => sha256(d)).sort());
      for (const [i, data] of values.entries())
        expect(
          (await storage.read(keys[2 * i] as string, (v) => v.bytes(), { verify: true })).equals(data),
        ).toBe(true);
      expect(faults.length).toBeGreaterThan(0);
      expect(faults.every((f) => f.level === '0 small')).toBe(true);
      expect(faults.map((f) => f.op)).toContain('contains');
      expect(levels.stats.faults).toEqual({ '0 small': faults.length });
    } finally {
      await storage.close();
    }
  });

  it('a write skips a hung Redis level after its timeoutMs', { timeout: 30_000 }, async () => {
    const disk = freshPath(base);
    const faults: LevelFault[] = [];
    // Redis's own command timeout is far longer than the test: only the level's timeout can end a wait.
    const top = small('hangw:', { commandTimeoutMs: 120_000 });
    const storage = new HashKeyStorage(
      new Levels(new Level(top, { timeoutMs: 300 }), disk, { onFault: (f) => faults.push(f) }),
    );
    await storage.write(Buffer.from('connects while redis answers'));
    redis.pause();
    try {
      const bytes = await storage.write(Buffer.from('bytes, while redis hangs'));
      const stream = await storage.write(chunks(Buffer.from('a stream, while redis hangs'), 5));
      expect(blobs(disk)).toEqual([bytes, stream].sort());
      expect(faults.length).toBeGreaterThan(0);
      for (const f of faults) {
        expect(f.level).toBe('0 small');
        expect(f.error.message).toBe('no answer within 300 ms');
      }
    } finally {
      redis.resume();
      await storage.close();
    }
  });

  it('skips a stopped Redis level on read and serves from the disk below', async () => {
    const mine = await startRedis();
    const disk = freshPath(base);
    const faults: LevelFault[] = [];
    const top = new Small(new RedisLocation({ url: mine.url, connectTimeoutMs: 500 }), 100 * 1024);
    const storage = new HashKeyStorage(new Levels(top, disk, { onFault: (f) => faults.push(f) }));
    const key = await new HashKeyStorage(disk).write(Buffer.from('survives a cache outage'));
    expect(await storage.read(key, (v) => v.text())).toBe('survives a cache outage');
    await mine.stop();
    const other = await new HashKeyStorage(disk).write(Buffer.from('read while redis is down'));
    expect(await storage.read(other, (v) => v.text())).toBe('read while redis is down');
    expect(await storage.contains(other)).toBe(true);
    expect(faults.some((f) => f.level === '0 small' && f.op === 'read')).toBe(true);
    await storage.close();
  });
});
