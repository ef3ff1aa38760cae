import { HashKeyStorage, RedisLocation } from '@tarnjs/tarn';
import { Redis as Client } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { available } from '../../../bed/index.js';
import { type Redis, startRedis } from '../../../bed/services.js';

describe.runIf(available('redis'))('Redis location', () => {
  let redis: Redis;
  beforeAll(async () => {
    redis = await startRedis();
  }, 60_000);
  afterAll(() => redis?.stop());

  it('with a ttl, writes expire and every read renews the expiry', async () => {
    const storage = new HashKeyStorage(new RedisLocation({ url: redis.url, prefix: 'ttl:', ttl: 100 }));
    const key = await storage.write(Buffer.from('expiring'));
    const raw = new Client(redis.url);
    try {
      const stored = Buffer.concat([Buffer.from('ttl:'), Buffer.from(key, 'hex')]);
      expect(await raw.ttl(stored)).toBeGreaterThan(90);
      await raw.expire(stored, 5);
      expect(await storage.read(key, (v) => v.text())).toBe('expiring');
      expect(await raw.ttl(stored)).toBeGreaterThan(90);
    } finally {
      raw.disconnect();
      await storage.close();
    }
  });
});
