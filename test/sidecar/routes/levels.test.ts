import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DiskLocation, HashKeyStorage, Levels, RedisLocation, S3Location } from '@tarnjs/tarn';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { available } from '../../bed/index.js';
import { type Redis, type S3, startRedis, startS3 } from '../../bed/services.js';
import { pseudoRandom, sha256 } from '../../helpers/data.js';
import { blobs } from '../../helpers/lake.js';
import { freshPath, tempDir } from '../../helpers/tmp.js';
import { createBucket } from '../../lib/location/s3/helpers.js';
import { type Served, serve } from './server.js';

const base = tempDir();
const blobPath = (root: string, key: string) => join(root, key.slice(0, 2), key.slice(2));

describe.runIf(available('redis') && available('s3'))('routes on disk over Redis over S3', () => {
  let redis: Redis;
  let s3: S3;
  let top: string;
  let s: Served;
  let onlyS3: Served;
  const s3Location = (prefix: string) =>
    new S3Location({
      bucket: 'lake',
      prefix,
      endpoint: s3.endpoint,
      credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    });
  /** The tree without its top lake: what another pod's sidecar (or a fresh node) sees. */
  const lower = () =>
    new HashKeyStorage(new Levels(new RedisLocation({ url: redis.url, prefix: 'v:' }), s3Location('tarn/')));

  beforeAll(async () => {
    [redis, s3] = await Promise.all([startRedis(), startS3()]);
    await createBucket(s3, 'lake');
    top = freshPath(base);
    const storage = new HashKeyStorage(
      new Levels(
        new DiskLocation(top),
        new RedisLocation({ url: redis.url, prefix: 'v:' }),
        s3Location('tarn/'),
      ),
    );
    s = await serve(base, storage, {
      memoIndex: new RedisLocation({ url: redis.url, prefix: 'memo:' }),
      settings: { allowDelete: true },
    });
    onlyS3 = await serve(base, new HashKeyStorage(s3Location('only/')));
  });
  afterAll(async () => {
    await s?.close();
    await onlyS3?.close();
    await Promise.all([redis?.stop(), s3?.stop()]);
  });

  it('writes into the tree and reads back', async () => {
    const data = pseudoRandom('levels', 200_000);
    const put = await s.call('PUT', '/v1/blobs', { body: data });
    expect(put.json).toEqual({ key: sha256(data), size: data.length, status: 'stored' });
    expect((await s.call('GET', `/v1/blobs/${put.json.key}`)).body.equals(data)).toBe(true);
    expect(blobs(top)).toContain(put.json.key);
    expect((await s.call('GET', `/v1/blobs/${put.json.key}?verify=1`)).body.equals(data)).toBe(true);
  });

  it('copies a value stored below into the top lake on /path (copy-on-read), and serves ranges from below', async () => {
    const data = pseudoRandom('below', 100_000);
    const below = lower();
    const key = await below.write(data);
    await below.close();
    expect(existsSync(blobPath(top, key))).toBe(false);
    const head = await s.call('HEAD', `/v1/blobs/${key}`);
    expect([head.status, head.headers['content-length']]).toEqual([200, '100000']);
    // HEAD copies nothing up.
    expect(existsSync(blobPath(top, key))).toBe(false);
    const path = await s.call('GET', `/v1/blobs/${key}/path?verify=1`);
    expect(path.json).toEqual({ key, path: blobPath(top, key), size: 100_000 });
    expect(readFileSync(path.json.path).equals(data)).toBe(true);

    // A value only in Redis/S3, served in part: the bytes before the range are skipped.
    const other = pseudoRandom('range below', 50_000);
    const lowerAgain = lower();
    const otherKey = await lowerAgain.write(other);
    await lowerAgain.close();
    expect(existsSync(blobPath(top, otherKey))).toBe(false);
    const r = await s.call('GET', `/v1/blobs/${otherKey}`, { headers: { range: 'bytes=40000-40009' } });
    expect(r.status).toBe(206);
    expect(r.body.equals(other.subarray(40000, 40010))).toBe(true);
  });

  it('lists, fetches and describes the tree', async () => {
    const keys = await Promise.all(
      [1, 2, 3].map(async (i) => (await s.call('PUT', '/v1/blobs', { body: `listed ${i}` })).json.key),
    );
    const all = (await s.call('GET', '/v1/keys')).text
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l).key);
    for (const k of keys) expect(all).toContain(k);
    expect(new Set(all).size).toBe(all.length);
    const page = await s.call('GET', '/v1/keys?limit=2');
    expect(page.json.keys).toEqual([...all].sort().slice(0, 2));
    const below = lower();
    const fetchKey = await below.write(Buffer.from('fetch me'));
    await below.close();
    const fetched = await s.call('POST', '/v1/fetch', { json: { keys: [fetchKey, sha256('never stored')] } });
    expect(fetched.json.results).toEqual([
      { key: fetchKey, present: true },
      { key: sha256('never stored'), present: false },
    ]);
    expect(blobs(top)).toContain(fetchKey);
    const described = await s.call('GET', '/v1/describe');
    expect(described.json.reachable).toBe(true);
    expect(described.json.location.kind).toBe('levels');
  });

  it('keeps memo entries in the configured index and leases in Redis', async () => {
    const callKey = sha256('levels call');
    const entry = '{"tarn":1}';
    expect((await s.call('PUT', `/v1/memo/${callKey}`, { body: entry })).json.status).toBe('stored');
    expect((await s.call('GET', `/v1/memo/${callKey}`)).text).toBe(entry);
    expect((await s.call('PUT', `/v1/memo/${callKey}`, { body: entry })).json.status).toBe('existed');
    // Another entry under the call key, of another size or of the same: 409, the first one stays.
    for (const different of ['{"tarn":2}', '{"tarn":12}']) {
      const other = await s.call('PUT', `/v1/memo/${callKey}`, { body: different });
      expect([other.status, other.json.code]).toEqual([409, 'TARN_COLLISION']);
      expect((await s.call('GET', `/v1/memo/${callKey}`)).text).toBe(entry);
    }
    const index = new RedisLocation({ url: redis.url, prefix: 'memo:' });
    expect(await index.contains(callKey)).toBe(true);
    await index.close();
    const url = `/v1/leases/${callKey}`;
    const a = await s.call('POST', url, { json: { action: 'acquire', ttlMs: 2000 } });
    expect(a.json.acquired).toBe(true);
    // Redis holds it: a lease from Redis directly (another pod) is refused.
    const direct = new RedisLocation({ url: redis.url, prefix: 'memo:' });
    expect(await direct.lease(callKey, 1000)).toBeNull();
    expect((await s.call('POST', url, { json: { action: 'renew', token: a.json.token } })).status).toBe(200);
    expect((await s.call('POST', url, { json: { action: 'release', token: a.json.token } })).status).toBe(
      204,
    );
    const after = await direct.lease(callKey, 1000);
    expect(after).not.toBeNull();
    await after?.release();
    await direct.close();
  });

  it('hands out the file of the disk lake below a Redis level that served the value (Redis over disk over S3)', async () => {
    const disk = freshPath(base);
    const redisFirst = await serve(
      base,
      new HashKeyStorage(
        new Levels(
          new RedisLocation({ url: redis.url, prefix: 'rf:' }),
          new DiskLocation(disk),
          s3Location('rf/'),
        ),
      ),
    );
    try {
      const data = pseudoRandom('redis first', 50_000);
      const key = await new HashKeyStorage(s3Location('rf/')).write(data);
      // Copy-on-read puts it in Redis and in the disk lake; Redis serves it, the lake gives the file.
      const path = await redisFirst.call('GET', `/v1/blobs/${key}/path`);
      expect(path.status).toBe(200);
      expect(path.json).toEqual({ key, path: blobPath(disk, key), size: data.length });
      expect(readFileSync(path.json.path).equals(data)).toBe(true);
      // Served from Redis again (its copy is there now): the lake still gives the file.
      expect((await redisFirst.call('GET', `/v1/blobs/${key}/path`)).json.path).toBe(blobPath(disk, key));
    } finally {
      await redisFirst.close();
    }
  });

  it('deletes from every level', async () => {
    const { key } = (await s.call('PUT', '/v1/blobs', { body: 'delete everywhere' })).json;
    expect((await s.call('DELETE', `/v1/blobs/${key}`)).status).toBe(204);
    expect((await s.call('HEAD', `/v1/blobs/${key}`)).status).toBe(404);
  });

  it('has no path to hand out, no memo index and no leases on a tree of S3 alone', async () => {
    const { key } = (await onlyS3.call('PUT', '/v1/blobs', { body: 'in s3 only' })).json;
    expect((await onlyS3.call('GET', `/v1/blobs/${key}`)).text).toBe('in s3 only');
    const path = await onlyS3.call('GET', `/v1/blobs/${key}/path`);
    expect([path.status, path.json.code]).toEqual([409, 'TARN_NO_LOCAL_COPY']);
    const memo = await onlyS3.call('GET', `/v1/memo/${sha256('x')}`);
    expect([memo.status, memo.json.code]).toEqual([501, 'TARN_UNSUPPORTED']);
    const lease = await onlyS3.call('POST', `/v1/leases/${sha256('x')}`, {
      json: { action: 'acquire', ttlMs: 1000 },
    });
    expect([lease.status, lease.json.code]).toEqual([501, 'TARN_UNSUPPORTED']);
    const r = await onlyS3.call('GET', `/v1/blobs/${key}`, { headers: { range: 'bytes=3-4' } });
    expect([r.status, r.text]).toEqual([206, 's3']);
  });
});
