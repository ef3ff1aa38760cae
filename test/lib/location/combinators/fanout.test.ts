import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  DiskLocation,
  Fanout,
  type FanoutFault,
  HashKeyStorage,
  PartialDeleteError,
  RedisLocation,
  RefusedError,
  RemoteError,
} from '@tarnjs/tarn';
import { describe, expect, it } from 'vitest';
import { pseudoRandom, sha256 } from '../../../helpers/data.js';
import { blobs, chunks, lakeObjects } from '../../../helpers/lake.js';
import { freshPath, tempDir } from '../../../helpers/tmp.js';
import { conformance } from '../conformance.js';

const base = tempDir();

conformance('fanout of two disks', async () => {
  const [a, b] = [freshPath(base), freshPath(base)];
  return {
    location: new Fanout(new DiskLocation(a, { maxSize: '10M' }), new DiskLocation(b)),
    objects: async () => [...lakeObjects(a), ...lakeObjects(b)],
  };
});

describe('Fanout', () => {
  it('writes to the next disk when the first is full, even midway through a stream', async () => {
    const [a, b] = [freshPath(base, 'hdd1'), freshPath(base, 'hdd2')];
    const storage = new HashKeyStorage(
      new Fanout(new DiskLocation(a, { maxSize: 3 << 20 }), new DiskLocation(b)),
    );
    const first = await storage.write(pseudoRandom('fits', 2 << 20));
    const data = pseudoRandom('overflows', 5 << 20);
    // A stream: the first disk learns the size only as it fills up, refuses midway, and hands the bytes on.
    const second = await storage.write(chunks(data));
    expect(second).toBe(sha256(data));
    expect(blobs(a)).toEqual([first]);
    expect(blobs(b)).toEqual([second]);
    expect((await storage.read(second, (v) => v.bytes(), { verify: true })).equals(data)).toBe(true);
    expect(readdirSync(join(a, '.tmp'))).toEqual([]);
  });

  it('never stores a second copy of a key another member holds', async () => {
    const [a, b] = [freshPath(base), freshPath(base)];
    const key = await new HashKeyStorage(b).write(Buffer.from('already in b'));
    const storage = new HashKeyStorage(new Fanout(new DiskLocation(a), new DiskLocation(b)));
    expect(await storage.write(Buffer.from('already in b'))).toBe(key);
    expect(await storage.write(chunks(Buffer.from('already in b')))).toBe(key);
    expect(blobs(a)).toEqual([]);
  });

  it('a value handed on midway and refused midway again reaches the next member whole', async () => {
    const [a, b, c] = [freshPath(base), freshPath(base), freshPath(base)];
    const storage = new HashKeyStorage(
      new Fanout(
        new DiskLocation(a, { maxSize: 2 << 20 }),
        new DiskLocation(b, { maxSize: 1 << 20 }),
        new DiskLocation(c),
      ),
    );
    // a refuses the third MiB; b refuses the second while a's bytes are replayed into it.
    const data = pseudoRandom('refused twice', 3 << 20);
    const key = await storage.write(chunks(data));
    expect(key).toBe(sha256(data));
    expect([blobs(a), blobs(b), blobs(c)]).toEqual([[], [], [key]]);
    expect(readFileSync(join(c, key.slice(0, 2), key.slice(2))).equals(data)).toBe(true);
  });

  it('refuses when every member is full, handing the whole stream back', async () => {
    const storage = new HashKeyStorage(
      new Fanout(
        new DiskLocation(freshPath(base), { maxSize: 1 << 20 }),
        new DiskLocation(freshPath(base), { maxSize: 2 << 20 }),
      ),
    );
    const data = pseudoRandom('too big for all', 5 << 20);
    const err = (await storage.write(chunks(data)).catch((e: unknown) => e)) as RefusedError;
    expect(err).toBeInstanceOf(RefusedError);
    const back: Uint8Array[] = [];
    for await (const c of err.source() ?? []) back.push(c);
    expect(Buffer.concat(back).equals(data)).toBe(true);
  });
});

describe('Fanout with a member that is down', () => {
  // Nothing listens on port 1: every operation of this member fails at once.
  const down = () => new RedisLocation({ url: 'redis://127.0.0.1:1', connectTimeoutMs: 200 });

  it('a write goes to the next member that is reachable, and the fault is reported', async () => {
    const disk = freshPath(base);
    const faults: FanoutFault[] = [];
    const fanout = new Fanout(down(), disk, { onFault: (f) => faults.push(f) });
    const storage = new HashKeyStorage(fanout);
    try {
      const fromBytes = await storage.write(Buffer.from('bytes, while redis is down'));
      const fromStream = await storage.write(chunks(Buffer.from('a stream, while redis is down'), 5));
      expect(blobs(disk)).toEqual([fromBytes, fromStream].sort());
      expect(faults.map((f) => [f.member, f.op])).toContainEqual(['0 redis', 'contains']);
      expect(faults.every((f) => f.member === '0 redis')).toBe(true);
      expect(fanout.stats.faults).toEqual({ '0 redis': faults.length });
    } finally {
      await storage.close();
    }
  });

  it('with every member down, bytes fail with its error and a stream is refused and handed back', async () => {
    const redis = down();
    const storage = new HashKeyStorage(new Fanout(redis, { onFault: () => undefined }));
    try {
      await expect(storage.write(Buffer.from('nowhere to go'))).rejects.toBeInstanceOf(RemoteError);
      const data = pseudoRandom('a stream with nowhere to go', 100_000);
      const err = (await storage.write(chunks(data, 30_000)).catch((e: unknown) => e)) as RefusedError;
      expect(err).toBeInstanceOf(RefusedError);
      expect(err.message).toContain(`redis ${redis.target} is unreachable`);
      const back: Uint8Array[] = [];
      for await (const c of err.source() ?? []) back.push(c);
      expect(Buffer.concat(back).equals(data)).toBe(true);
    } finally {
      await storage.close();
    }
  });

  it('a delete that fails on one member says what it deleted where, and what failed', async () => {
    const disk = freshPath(base);
    const key = await new HashKeyStorage(disk).write(Buffer.from('in the second member'));
    const redis = down();
    const storage = new HashKeyStorage(new Fanout(redis, disk, { onFault: () => undefined }));
    try {
      const err = (await storage.delete(key).catch((e: unknown) => e)) as PartialDeleteError;
      expect(err).toBeInstanceOf(PartialDeleteError);
      expect(err.deleted).toEqual([`disk ${disk}`]);
      expect(err.failed.map((f) => f.where)).toEqual([`redis ${redis.target}`]);
      expect(blobs(disk)).toEqual([]);
    } finally {
      await storage.close();
    }
  });

  it('a read or contains finds a key another member holds; a miss while a member is down is an error', async () => {
    const disk = freshPath(base);
    const key = await new HashKeyStorage(disk).write(Buffer.from('on the disk member'));
    const faults: FanoutFault[] = [];
    const storage = new HashKeyStorage(new Fanout(down(), disk, { onFault: (f) => faults.push(f) }));
    try {
      expect(await storage.read(key, (v) => v.text())).toBe('on the disk member');
      expect(await storage.contains(key)).toBe(true);
      expect(faults.map((f) => f.op)).toEqual(['read', 'contains']);
      // The down member may hold it: "not stored" would be a guess.
      const missing = sha256('maybe on the member that is down');
      await expect(storage.readOrNull(missing)).rejects.toBeInstanceOf(RemoteError);
      await expect(storage.contains(missing)).rejects.toBeInstanceOf(RemoteError);
    } finally {
      await storage.close();
    }
  });
});
