import { Redis as Client } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { available } from './index.js';
import { type Redis, startRedis } from './services.js';

describe.runIf(available('redis'))('bed: redis', () => {
  let redis: Redis;
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(() => redis?.stop());

  it('round-trips binary values with ioredis', async () => {
    const client = new Client(redis.url, { lazyConnect: true });
    await client.connect();
    const value = Buffer.from([0, 1, 2, 255, 254]);
    await client.set('bed:key', value);
    expect((await client.getBuffer('bed:key'))?.equals(value)).toBe(true);
    expect(await client.dbsize()).toBe(1);
    client.disconnect();
  });
});
