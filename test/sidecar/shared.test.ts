import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { HashKeyStorage, RedisLocation, S3Location, SidecarLocation } from '@tarnjs/tarn';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { available } from '../bed/index.js';
import { type Redis, type S3, startRedis, startS3 } from '../bed/services.js';
import { pseudoRandom, sha256 } from '../helpers/data.js';
import { blobs } from '../helpers/lake.js';
import { run } from '../helpers/spawn.js';
import { freshPath, tempDir } from '../helpers/tmp.js';
import { createBucket } from '../lib/location/s3/helpers.js';
import { call, type Sidecar, startSidecar } from './serve-process.js';

const CHILD = fileURLToPath(new URL('../helpers/children/memo-env.mjs', import.meta.url));
const dir = tempDir('tarn-shared-');
/** The node's hostPath: one disk lake both pods mount. */
const lake = join(dir, 'node-lake');
const blobPath = (key: string) => join(lake, key.slice(0, 2), key.slice(2));
/** Temp files in the node's lake. */
const temps = () => (existsSync(join(lake, '.tmp')) ? readdirSync(join(lake, '.tmp')) : []);

/**
 * Two pods on one node, each with its sidecar (`tarn serve`, started as a user starts it) and its
 * own socket, their configs naming the same tree: the node's disk lake (a hostPath) over one Redis
 * over one S3 bucket, the memo index in that Redis. What one pod stores the other reads, zero copy;
 * what only S3 holds comes up on a read; smartCache computes once across both.
 */
describe.runIf(available('redis') && available('s3'))(
  'two tarn serve processes sharing a disk lake, Redis and S3',
  () => {
    let redis: Redis;
    let s3: S3;
    let a: Sidecar;
    let b: Sidecar;
    const env = () => ({ TARN_TEST_S3_KEY: s3.accessKeyId, TARN_TEST_S3_SECRET: s3.secretAccessKey });
    const s3Location = () =>
      new S3Location({
        bucket: 'shared',
        prefix: 'tarn/',
        endpoint: s3.endpoint,
        credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
      });
    const redisLevel = () => new RedisLocation({ url: redis.url, prefix: 'v:' });

    /** A pod's config (JSON, one of the config formats), in a folder of its own with its socket. */
    function pod(name: string): string {
      const folder = join(dir, name);
      mkdirSync(folder);
      const file = join(folder, 'tarn.json');
      writeFileSync(
        file,
        JSON.stringify({
          location: {
            kind: 'levels',
            levels: [
              lake,
              { kind: 'redis', url: redis.url, prefix: 'v:' },
              {
                kind: 's3',
                bucket: 'shared',
                prefix: 'tarn/',
                endpoint: s3.endpoint,
                credentials: {
                  accessKeyId: { env: 'TARN_TEST_S3_KEY' },
                  secretAccessKey: { env: 'TARN_TEST_S3_SECRET' },
                },
              },
            ],
          },
          memo: { index: { kind: 'redis', url: redis.url, prefix: 'memo:' } },
          serve: { socket: './tarn.sock' },
        }),
      );
      return file;
    }

    beforeAll(async () => {
      [redis, s3] = await Promise.all([startRedis(), startS3()]);
      await createBucket(s3, 'shared');
      [a, b] = await Promise.all([
        startSidecar(['--config', pod('pod-a')], { env: env() }),
        startSidecar(['--config', pod('pod-b')], { env: env() }),
      ]);
    });
    afterAll(async () => {
      await Promise.all([a?.stop(), b?.stop()]);
      await Promise.all([redis?.stop(), s3?.stop()]);
    });

    it('reads through one sidecar what was written through the other, /path naming the same file', async () => {
      const data = pseudoRandom('written by pod a', 300_000);
      const put = await call(a.socket, 'PUT', '/v1/blobs', data);
      expect(JSON.parse(put.text)).toEqual({ key: sha256(data), size: data.length, status: 'stored' });
      const key = sha256(data);
      // A write goes to the first write level: the node's lake.
      expect(blobs(lake)).toContain(key);

      const got = await call(b.socket, 'GET', `/v1/blobs/${key}?verify=1`);
      expect([got.status, got.body.equals(data)]).toEqual([200, true]);
      const pathB = JSON.parse((await call(b.socket, 'GET', `/v1/blobs/${key}/path`)).text);
      const pathA = JSON.parse((await call(a.socket, 'GET', `/v1/blobs/${key}/path`)).text);
      expect(pathB).toEqual({ key, path: blobPath(key), size: data.length });
      expect(pathA).toEqual(pathB);
      expect(readFileSync(pathB.path).equals(data)).toBe(true);

      // The client (SidecarLocation) opens that file itself: the zero-copy read.
      const other = new SidecarLocation(b.socket);
      try {
        const value = await other.read(key);
        expect(value?.path).toBe(blobPath(key));
        await value?.close();
        expect(await new HashKeyStorage(other).read(key, (v) => v.bytes(), { verify: true })).toEqual(data);
      } finally {
        await other.close();
      }
    });

    it('copies up a value that only S3 holds (written behind their backs) when one of them reads it', async () => {
      const data = pseudoRandom('only in S3', 200_000);
      const bottom = new HashKeyStorage(s3Location());
      const key = await bottom.write(data);
      await bottom.close();
      const middle = redisLevel();
      try {
        expect([existsSync(blobPath(key)), await middle.contains(key)]).toEqual([false, false]);
        const head = await call(a.socket, 'HEAD', `/v1/blobs/${key}`);
        expect([head.status, head.headers['content-length']]).toEqual([200, String(data.length)]);

        const got = await call(b.socket, 'GET', `/v1/blobs/${key}`);
        expect([got.status, got.body.equals(data)]).toEqual([200, true]);
        // Copied into every level above the hit: the node's lake and Redis.
        expect(existsSync(blobPath(key))).toBe(true);
        expect(await middle.contains(key)).toBe(true);
        const inode = statSync(blobPath(key)).ino;
        // The other pod finds it in the shared lake: the same file, not a second copy.
        const path = JSON.parse((await call(a.socket, 'GET', `/v1/blobs/${key}/path?verify=1`)).text);
        expect(path).toEqual({ key, path: blobPath(key), size: data.length });
        expect(statSync(path.path).ino).toBe(inode);
      } finally {
        await middle.close();
      }
    });

    it('stores one copy when both write the same value at once, and copies one up when both read it from S3 at once', async () => {
      const data = pseudoRandom('written by both', 2 << 20);
      const key = sha256(data);
      const puts = await Promise.all(
        [a, b, a, b, a, b, a, b].map((s) => call(s.socket, 'PUT', '/v1/blobs', data)),
      );
      expect(puts.map((p) => p.status)).toEqual(Array(8).fill(201));
      const statuses = puts.map((p) => JSON.parse(p.text).status as string);
      expect(statuses).toContain('stored');
      expect(statuses.every((st) => st === 'stored' || st === 'existed')).toBe(true);
      expect(blobs(lake).filter((k) => k === key)).toHaveLength(1);
      expect(readFileSync(blobPath(key)).equals(data)).toBe(true);

      const below = pseudoRandom('read by both from S3', 3 << 20);
      const bottom = new HashKeyStorage(s3Location());
      const belowKey = await bottom.write(below);
      await bottom.close();
      const reads = await Promise.all(
        [a, b, a, b].map((s, i) =>
          call(s.socket, 'GET', i % 2 ? `/v1/blobs/${belowKey}/path` : `/v1/blobs/${belowKey}`),
        ),
      );
      expect(reads.map((r) => r.status)).toEqual([200, 200, 200, 200]);
      expect(reads[0]?.body.equals(below)).toBe(true);
      expect(JSON.parse(reads[1]?.text ?? '{}').path).toBe(blobPath(belowKey));
      expect(readFileSync(blobPath(belowKey)).equals(below)).toBe(true);
      expect(temps()).toEqual([]);
    });

    it('smartCache() from four processes, two through each sidecar, computes once (index and leases in Redis)', async () => {
      const CALLS = freshPath(dir, 'calls');
      const outcomes = await Promise.all(
        [a, b, a, b].map(async (s) => {
          const r = await run(process.execPath, [CHILD], {
            cwd: dir,
            env: { TARN_SIDECAR: s.socket, TARN_STORAGE: '', CALLS, SLOW: '500', X: '9' },
          });
          if (r.code !== 0) throw new Error(`memo-env.mjs failed (${r.code}): ${r.stderr}`);
          return JSON.parse(r.stdout) as {
            result: { square: number; by: number };
            stats: { misses: number };
          };
        }),
      );
      const computed = readFileSync(CALLS, 'utf8').trim().split('\n');
      expect(computed).toHaveLength(1);
      expect(outcomes.map((o) => o.result.square)).toEqual([81, 81, 81, 81]);
      expect(outcomes.map((o) => o.result.by)).toEqual([1, 2, 3, 4].map(() => Number(computed[0])));
      expect(outcomes.map((o) => o.stats.misses).sort()).toEqual([0, 0, 0, 1]);
      // The entry is in Redis, not in the node's lake (tools/memo): a pod on another node shares it.
      const index = new RedisLocation({ url: redis.url, prefix: 'memo:' });
      try {
        let entries = 0;
        for await (const _ of index.keys()) entries++;
        expect(entries).toBe(1);
      } finally {
        await index.close();
      }
      expect(existsSync(join(lake, 'tools', 'memo'))).toBe(false);
    });
  },
);
