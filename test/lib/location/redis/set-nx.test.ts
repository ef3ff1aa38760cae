import { AbortError, HashKeyStorage, RedisLocation } from '@tarnjs/tarn';
import { Redis as Client } from 'ioredis';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { available } from '../../../bed/index.js';
import { type Redis, startRedis } from '../../../bed/services.js';
import { pseudoRandom, sha256 } from '../../../helpers/data.js';

describe.runIf(available('redis'))('Redis writes: one SET NX', () => {
  let redis: Redis;
  let raw: Client;
  let monitor: Client;
  // Every command the server ran, as MONITOR reports it (name lowercased, then its arguments).
  const ran: string[][] = [];
  let marks = 0;
  /**
   * The commands the server ran since the last call, other than ours: a PING with a fresh mark goes
   * last, and MONITOR reports commands in the order the server ran them.
   */
  const commands = async (): Promise<string[][]> => {
    const mark = `mark-${++marks}`;
    await raw.ping(mark);
    for (;;) {
      const at = ran.findIndex((c) => c[0] === 'ping' && c[1] === mark);
      if (at >= 0) return ran.splice(0, at + 1).slice(0, at);
      await new Promise((r) => setTimeout(r, 5));
    }
  };
  const rawKey = (prefix: string, key: string) =>
    Buffer.concat([Buffer.from(prefix), Buffer.from(key, 'hex')]);

  beforeAll(async () => {
    redis = await startRedis();
    raw = new Client(redis.url);
    monitor = await new Client(redis.url).monitor();
    monitor.on('monitor', (_time: string, args: string[]) => {
      ran.push([String(args[0]).toLowerCase(), ...args.slice(1).map(String)]);
    });
    await commands();
  }, 60_000);
  // What the previous test ran after its last look (its own checks) is not this test's.
  beforeEach(async () => {
    await commands();
  });
  afterAll(async () => {
    monitor?.disconnect();
    raw?.disconnect();
    await redis?.stop();
  });

  it('a small value of known size is one SET NX, from memory; written again, the same one command answers existed', async () => {
    const storage = new HashKeyStorage(new RedisLocation({ url: redis.url, prefix: 'once:' }));
    const data = pseudoRandom('redis once', 1024);
    const first = await storage.put(data);
    expect(first).toMatchObject({ status: 'stored' });
    const sent = await commands();
    // The client's connection handshake may show (INFO); after it, the write is a single command.
    const writes = sent.filter((c) => c[0] !== 'info');
    expect(writes.map((c) => [c[0], c.at(-1)])).toEqual([['set', 'NX']]);
    expect(await storage.put(data)).toMatchObject({ status: 'existed' });
    expect((await commands()).map((c) => [c[0], c.at(-1)])).toEqual([['set', 'NX']]);
    expect((await raw.getBuffer(rawKey('once:', first.key)))?.equals(data)).toBe(true);
    await storage.close();
  });

  it('with a ttl, the expiry goes in the same SET', async () => {
    const storage = new HashKeyStorage(new RedisLocation({ url: redis.url, prefix: 'ttl-nx:', ttl: 300 }));
    await storage.put(Buffer.from('with a ttl'));
    const writes = (await commands()).filter((c) => c[0] !== 'info');
    expect(writes.map((c) => [c[0], ...c.slice(-3)])).toEqual([['set', 'EX', '300', 'NX']]);
    expect(await raw.ttl(rawKey('ttl-nx:', sha256('with a ttl')))).toBeGreaterThan(290);
    await storage.close();
  });

  it('writers racing on one key: one stores, the others find it existed', async () => {
    const data = pseudoRandom('redis race', 4096);
    // Independent writers, as separate processes would be: a location (and a connection) each.
    const writers = Array.from({ length: 8 }, () => new RedisLocation({ url: redis.url, prefix: 'race:' }));
    const results = await Promise.all(writers.map((w) => new HashKeyStorage(w).put(data)));
    expect(results.filter((r) => r.status === 'stored')).toHaveLength(1);
    expect(results.filter((r) => r.status === 'existed')).toHaveLength(7);
    expect((await raw.getBuffer(rawKey('race:', sha256(data))))?.equals(data)).toBe(true);
    await Promise.all(writers.map((w) => w.close()));
  });

  it('a known size that turns out to be short is refused at the chunk past the limit, every byte handed back, nothing sent', async () => {
    const location = new RedisLocation({ url: redis.url, prefix: 'lied:', maxValueSize: 100 });
    await location.contains(sha256('connect first'));
    await commands();
    const stage = await location.stage({ size: 60 });
    if (!stage) throw new Error('a stage of 60 bytes under a limit of 100 was refused');
    const a = Buffer.alloc(60, 1);
    const b = Buffer.alloc(60, 2);
    expect(await stage.push(a)).toBe(true);
    expect(await stage.push(b)).toBe(false);
    const back: Uint8Array[] = [];
    for await (const c of stage.reclaim()) back.push(c);
    expect(Buffer.concat(back).equals(Buffer.concat([a, b]))).toBe(true);
    expect(await commands()).toEqual([]);
    await location.close();
  });

  it('an abort before the commit, or in the middle of a stream, sends nothing and stores nothing', async () => {
    const storage = new HashKeyStorage(new RedisLocation({ url: redis.url, prefix: 'abort:' }));
    await storage.contains(sha256('connect first'));
    await commands();
    // A value in memory, aborted before its write began.
    const controller = new AbortController();
    controller.abort(new Error('user cancelled'));
    const data = pseudoRandom('redis abort', 1024);
    expect(await storage.put(data, { signal: controller.signal }).catch((e: unknown) => e)).toBeInstanceOf(
      AbortError,
    );
    // A stream, aborted after its first chunk.
    const streamed = new AbortController();
    const big = pseudoRandom('redis abort stream', 3 << 20);
    const chunks = async function* () {
      yield big.subarray(0, 1 << 20);
      streamed.abort(new Error('user cancelled'));
      yield big.subarray(1 << 20);
    };
    expect(await storage.put(chunks(), { signal: streamed.signal }).catch((e: unknown) => e)).toBeInstanceOf(
      AbortError,
    );
    expect(await commands()).toEqual([]);
    expect(await raw.keys('abort:*')).toEqual([]);
    await storage.close();
  });
});
