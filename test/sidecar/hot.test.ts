import { setTimeout as sleep } from 'node:timers/promises';
import { HotCache, hotCacheOf } from '@tarnjs/sidecar';
import { digest } from '@tarnjs/tarn';
import { describe, expect, it } from 'vitest';
import { pseudoRandom, sha256 } from '../helpers/data.js';

const sha = digest('sha256');
const settings = { size: 64 << 10, valueLimit: 4 << 10, maxAgeMs: 60_000 };
const value = (n: number, seed: number) => pseudoRandom(`hot-${seed}`, n);

describe('HotCache', () => {
  it('answers what it keeps, and counts hits and misses', () => {
    const hot = new HotCache(settings, sha);
    const v = value(1000, 1);
    expect(hot.get(sha256(v))).toBeUndefined();
    expect(hot.set(sha256(v), v)).toBe(true);
    expect(hot.get(sha256(v))?.equals(v)).toBe(true);
    expect(hot.stats).toMatchObject({ hits: 1, misses: 1 });
    expect(hot.entries).toBe(1);
  });

  it('keeps only bytes that are the value of their key', () => {
    const hot = new HotCache(settings, sha);
    const v = value(100, 2);
    const wrong = Buffer.from(v);
    wrong[0] = (wrong[0] as number) ^ 1;
    expect(hot.set(sha256(v), wrong)).toBe(false);
    expect(hot.get(sha256(v))).toBeUndefined();
    expect(hot.entries).toBe(0);
  });

  it('keeps no value over its limit, nor one larger than the whole cache', () => {
    const hot = new HotCache(settings, sha);
    const big = value(settings.valueLimit + 1, 3);
    expect(hot.set(sha256(big), big)).toBe(false);
    const tiny = new HotCache({ ...settings, size: 100 }, sha);
    const v = value(10, 4);
    expect(tiny.set(sha256(v), v)).toBe(false);
  });

  it('stays within its size, dropping first what was not read lately (CLOCK)', () => {
    const hot = new HotCache({ ...settings, size: 5 * (1024 + 256) }, sha);
    const values = Array.from({ length: 8 }, (_, i) => value(1024, 10 + i));
    const keys = values.map((v) => sha256(v));
    for (let i = 0; i < 5; i++) hot.set(keys[i] as string, values[i] as Buffer);
    // 0 is used again: 1 is now the least recently used.
    expect(hot.get(keys[0] as string)).toBeDefined();
    for (let i = 5; i < 8; i++) {
      hot.set(keys[i] as string, values[i] as Buffer);
      expect(hot.bytes).toBeLessThanOrEqual(5 * (1024 + 256));
    }
    expect(hot.stats.evictions).toBe(3);
    const kept = keys.filter((k) => hot.get(k) !== undefined);
    expect(kept).toEqual([keys[0], keys[4], keys[5], keys[6], keys[7]]);
  });

  it('reads an entry from the tree again once it is older than maxAgeMs', async () => {
    const hot = new HotCache({ ...settings, maxAgeMs: 30 }, sha);
    const v = value(64, 5);
    hot.set(sha256(v), v);
    expect(hot.get(sha256(v))).toBeDefined();
    await sleep(60);
    expect(hot.get(sha256(v))).toBeUndefined();
    expect(hot.stats.expired).toBe(1);
    expect(hot.entries).toBe(0);
    expect(hot.bytes).toBe(0);
  });

  it('copies bytes that share a larger buffer, so an entry never pins memory it does not count', () => {
    const hot = new HotCache(settings, sha);
    const backing = value(8192, 6);
    const part = backing.subarray(100, 200);
    hot.set(sha256(part), part);
    const kept = hot.get(sha256(part)) as Buffer;
    expect(kept.equals(part)).toBe(true);
    expect(kept.buffer).not.toBe(backing.buffer);
    expect(kept.buffer.byteLength).toBe(100);
  });

  it('forgets a deleted key, and a second set of one key counts it once', () => {
    const hot = new HotCache(settings, sha);
    const v = value(500, 7);
    hot.set(sha256(v), v);
    hot.set(sha256(v), v);
    expect(hot.bytes).toBe(500 + 256);
    hot.delete(sha256(v));
    expect(hot.get(sha256(v))).toBeUndefined();
    expect(hot.bytes).toBe(0);
  });

  it('is not made when its settings keep nothing', () => {
    expect(hotCacheOf({ ...settings, size: 0 }, sha)).toBeUndefined();
    expect(hotCacheOf({ ...settings, valueLimit: 0 }, sha)).toBeUndefined();
    expect(hotCacheOf(settings, sha)).toBeInstanceOf(HotCache);
  });
});
