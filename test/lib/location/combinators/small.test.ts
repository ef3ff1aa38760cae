import { DiskLocation, Fanout, HashKeyStorage, RedisLocation, RefusedError, Small } from '@tarnjs/tarn';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { available } from '../../../bed/index.js';
import { type Redis, startRedis } from '../../../bed/services.js';
import { pseudoRandom } from '../../../helpers/data.js';
import { blobs, chunks, lakeObjects } from '../../../helpers/lake.js';
import { freshPath, tempDir } from '../../../helpers/tmp.js';
import { conformance } from '../conformance.js';

const base = tempDir();

conformance('small over a disk', async () => {
  const root = freshPath(base);
  return {
    location: new Small(new DiskLocation(root), { maxSize: 200 << 20 }),
    objects: async () => lakeObjects(root),
  };
});

describe('Small', () => {
  it('refuses a value over maxSize at the first chunk past it, and hands every byte back', async () => {
    const disk = freshPath(base);
    const storage = new HashKeyStorage(new Small(disk, 100 * 1024));
    const data = pseudoRandom('a long stream', 100 * 64 * 1024);
    let pulled = 0;
    async function* counted() {
      for (let i = 0; i < data.length; i += 64 * 1024) {
        pulled += 64 * 1024;
        yield data.subarray(i, i + 64 * 1024);
      }
    }
    const err = (await storage.write(counted()).catch((e: unknown) => e)) as RefusedError;
    expect(err).toBeInstanceOf(RefusedError);
    // The storage reads a stream in pieces of up to 1 MiB: Small stops it at the first piece past its limit.
    expect(pulled).toBeLessThanOrEqual(100 * 1024 + (1 << 20) + 64 * 1024);
    expect(blobs(disk)).toEqual([]);
    const back: Uint8Array[] = [];
    for await (const c of err.source() ?? []) back.push(c);
    expect(Buffer.concat(back).equals(data)).toBe(true);
    // A value of exactly maxSize fits; the empty value is small too.
    expect(await storage.write(Buffer.alloc(100 * 1024, 7))).toMatch(/^[0-9a-f]{64}$/);
    expect(await storage.write(Buffer.alloc(0))).toMatch(/^[0-9a-f]{64}$/);
    expect(blobs(disk)).toHaveLength(2);
  });

  it('rejects a maxSize that is not a byte count', () => {
    expect(() => new Small(freshPath(base), -1)).toThrow(/byte count/);
  });
});

describe.runIf(available('redis'))('Small', () => {
  let redis: Redis;
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(() => redis?.stop());

  it('lets small values into Redis and sends larger ones on to the disk', async () => {
    const disk = freshPath(base);
    const small = new Small(new RedisLocation({ url: redis.url, prefix: 'small:' }), { maxSize: 100 * 1024 });
    const storage = new HashKeyStorage(new Fanout(small, new DiskLocation(disk)));
    const tiny = await storage.write(Buffer.from('tiny'));
    const big = pseudoRandom('bigger than small', 300 * 1024);
    const bigKey = await storage.write(chunks(big, 64 * 1024));
    expect(await small.contains(tiny)).toBe(true);
    expect(await small.contains(bigKey)).toBe(false);
    expect(blobs(disk)).toEqual([bigKey]);
    expect(await storage.read(tiny, (v) => v.text())).toBe('tiny');
    await expect(small.stage({ size: 200 * 1024 })).resolves.toBeNull();
    await storage.close();
  });
});
