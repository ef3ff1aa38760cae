import { HashKeyStorage, RedisLocation, RemoteError } from '@tarnjs/tarn';
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

  it('takes a password in a URL given in code, and never shows it in its target or its errors', async () => {
    // A user of its own, so the server's default user (the other tests') keeps no password.
    const admin = new Client(redis.url);
    const password = 'hunter2/with@signs';
    await admin.call('ACL', 'SETUSER', 'tarn-url', 'on', `>${password}`, '~*', '+@all');
    admin.disconnect();
    const { hostname, port } = new URL(redis.url);
    const url = (pw: string) => `redis://tarn-url:${encodeURIComponent(pw)}@${hostname}:${port}/0`;

    const right = new RedisLocation({ url: url(password), prefix: 'url-auth:' });
    expect(right.target).toBe(`redis://***@${hostname}:${port}/0`);
    const storage = new HashKeyStorage(right);
    const key = await storage.write(Buffer.from('authenticated'));
    expect(await storage.read(key, (v) => v.text())).toBe('authenticated');
    await storage.close();

    const wrong = new RedisLocation({ url: url('wrong-hunter3'), connectTimeoutMs: 2000 });
    const error = await wrong.contains(key).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RemoteError);
    expect((error as Error).message).toContain(`redis://***@${hostname}:${port}/0`);
    expect(JSON.stringify({ message: (error as Error).message, target: wrong.target })).not.toMatch(
      /hunter3|hunter2/,
    );
    await wrong.close();

    // Unencoded, as people write them: the whole user-info is hidden, whatever it holds.
    expect(new RedisLocation(`redis://:pa/ss@word@${hostname}:${port}`).target).toBe(
      `redis://***@${hostname}:${port}`,
    );
    expect(new RedisLocation(`${hostname}:${port}?password=hunter2&db=1`).target).toBe(
      `redis://${hostname}:${port}?password=***&db=1`,
    );
  });
});
