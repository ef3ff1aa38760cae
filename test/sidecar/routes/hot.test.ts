import { chmodSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { HashKeyStorage } from '@tarnjs/tarn';
import { afterAll, describe, expect, it } from 'vitest';
import { pseudoRandom, sha256 } from '../../helpers/data.js';
import { freshPath, tempDir } from '../../helpers/tmp.js';
import { type Served, serve } from './server.js';

const base = tempDir();
const blobPath = (root: string, key: string) => join(root, key.slice(0, 2), key.slice(2));
const hotCache = (maxAgeMs: number) => ({ size: 1 << 20, valueLimit: 64 << 10, maxAgeMs });

/** A sidecar over a fresh lake with the given hot cache. */
async function sidecar(maxAgeMs: number, size = 1 << 20): Promise<{ s: Served; root: string }> {
  const root = freshPath(base, 'lake');
  const s = await serve(base, new HashKeyStorage(root), {
    settings: { hotCache: { ...hotCache(maxAgeMs), size }, allowDelete: true },
  });
  return { s, root };
}

const open: Served[] = [];
afterAll(async () => {
  for (const s of open) await s.close();
});

describe('the hot cache of small values', () => {
  it('answers a value it stored from memory; a delete behind its back shows after maxAgeMs', async () => {
    const { s, root } = await sidecar(300);
    open.push(s);
    const v = pseudoRandom('hot-route-1', 1024);
    const put = await s.call('PUT', '/v1/blobs', { body: v });
    expect(put.status).toBe(201);
    const key = put.json.key as string;
    // Another process deletes the blob (a second sidecar on the same hostPath, an admin).
    rmSync(blobPath(root, key), { force: true });
    const soon = await s.call('GET', `/v1/blobs/${key}`);
    expect(soon.status).toBe(200);
    expect(soon.body.equals(v)).toBe(true);
    await sleep(400);
    const later = await s.call('GET', `/v1/blobs/${key}`);
    expect(later.status).toBe(404);
    expect(later.json.code).toBe('TARN_NOT_FOUND');
  });

  it('forgets a value deleted through the sidecar at once', async () => {
    const { s } = await sidecar(60_000);
    open.push(s);
    const v = pseudoRandom('hot-route-2', 2000);
    const key = (await s.call('PUT', '/v1/blobs', { body: v })).json.key as string;
    expect((await s.call('GET', `/v1/blobs/${key}`)).status).toBe(200);
    expect((await s.call('DELETE', `/v1/blobs/${key}`)).status).toBe(204);
    expect((await s.call('GET', `/v1/blobs/${key}`)).status).toBe(404);
    expect((await s.call('HEAD', `/v1/blobs/${key}`)).status).toBe(404);
  });

  it('never keeps a blob that is corrupt on disk, and serves kept bytes verified', async () => {
    const { s, root } = await sidecar(60_000);
    open.push(s);
    const lake = new HashKeyStorage(root);
    const v = pseudoRandom('hot-route-3', 4096);
    const key = await lake.write(v);
    const path = blobPath(root, key);
    chmodSync(path, 0o644);
    writeFileSync(path, pseudoRandom('hot-route-3-corrupt', 4096));
    chmodSync(path, 0o444);
    // Asked without verify: the lake's bytes, as before (nobody asked for a check), and not kept.
    const plain = await s.call('GET', `/v1/blobs/${key}`);
    expect(plain.status).toBe(200);
    expect(sha256(plain.body)).not.toBe(key);
    const verified = await s.call('GET', `/v1/blobs/${key}?verify=1`);
    expect(verified.status).toBe(500);
    expect(verified.json.code).toBe('TARN_CORRUPTION');

    // A value kept, then corrupted on disk: the kept bytes were checked when kept.
    const w = pseudoRandom('hot-route-3b', 4096);
    const key2 = (await s.call('PUT', '/v1/blobs', { body: w })).json.key as string;
    const path2 = blobPath(root, key2);
    chmodSync(path2, 0o644);
    writeFileSync(path2, pseudoRandom('hot-route-3b-corrupt', 4096));
    chmodSync(path2, 0o444);
    const kept = await s.call('GET', `/v1/blobs/${key2}?verify=1`);
    expect(kept.status).toBe(200);
    expect(kept.body.equals(w)).toBe(true);
    await lake.close();
  });

  it('answers ETag, 304, ranges and HEAD from memory exactly as from the tree', async () => {
    const { s: hot, root } = await sidecar(60_000);
    const cold = await serve(base, new HashKeyStorage(root), {
      settings: { hotCache: { ...hotCache(60_000), size: 0 } },
    });
    open.push(hot, cold);
    const v = pseudoRandom('hot-route-4', 3000);
    const key = (await hot.call('PUT', '/v1/blobs', { body: v })).json.key as string;
    const asks: Array<[string, Record<string, string>]> = [
      ['GET', {}],
      ['GET', { range: 'bytes=10-19' }],
      ['GET', { range: 'bytes=-5' }],
      ['GET', { range: 'bytes=2999-' }],
      ['GET', { range: 'bytes=5000-' }],
      ['GET', { range: 'bytes=1-2,4-5' }],
      ['GET', { range: 'bytes=10-19', 'if-range': '"other"' }],
      ['GET', { 'if-none-match': `"${key}"` }],
      ['GET', { 'if-none-match': '"other", *' }],
      ['HEAD', {}],
    ];
    const same = [
      'etag',
      'x-tarn-key',
      'cache-control',
      'accept-ranges',
      'content-type',
      'content-length',
      'content-range',
    ];
    for (const [method, headers] of asks) {
      const a = await hot.call(method, `/v1/blobs/${key}`, { headers });
      const b = await cold.call(method, `/v1/blobs/${key}`, { headers });
      const label = `${method} ${JSON.stringify(headers)}`;
      expect(a.status, label).toBe(b.status);
      // A problem names its request (instance, requestId): the rest is the same.
      if (a.headers['content-type']?.startsWith('application/problem+json')) {
        const { instance: _a, requestId: _ra, ...pa } = a.json;
        const { instance: _b, requestId: _rb, ...pb } = b.json;
        expect(pa, label).toEqual(pb);
      } else expect(a.body.equals(b.body), label).toBe(true);
      for (const h of same) expect(a.headers[h], `${label} ${h}`).toBe(b.headers[h]);
    }
    expect(hot.trees.current()?.hot?.stats.hits).toBeGreaterThanOrEqual(asks.length);
    expect(cold.trees.current()?.hot).toBeUndefined();
  });

  it('is off with size 0: a delete behind its back shows at once', async () => {
    const { s, root } = await sidecar(60_000, 0);
    open.push(s);
    const key = (await s.call('PUT', '/v1/blobs', { body: 'cold' })).json.key as string;
    expect((await s.call('GET', `/v1/blobs/${key}`)).status).toBe(200);
    rmSync(blobPath(root, key), { force: true });
    expect((await s.call('GET', `/v1/blobs/${key}`)).status).toBe(404);
  });

  it('starts empty with each tree: a reload never answers a value of the tree it replaced', async () => {
    const { s } = await sidecar(60_000);
    open.push(s);
    const key = (await s.call('PUT', '/v1/blobs', { body: 'of the first tree' })).json.key as string;
    expect((await s.call('GET', `/v1/blobs/${key}`)).status).toBe(200);
    s.trees.swap(new HashKeyStorage(freshPath(base, 'other')), undefined);
    expect((await s.call('GET', `/v1/blobs/${key}`)).status).toBe(404);
  });

  it('keeps no value over its limit (a large one streams from the tree every time)', async () => {
    const { s, root } = await sidecar(60_000);
    open.push(s);
    const v = pseudoRandom('hot-route-7', (64 << 10) + 1);
    const key = (await s.call('PUT', '/v1/blobs', { body: v })).json.key as string;
    expect((await s.call('GET', `/v1/blobs/${key}`)).body.equals(v)).toBe(true);
    rmSync(blobPath(root, key), { force: true });
    expect((await s.call('GET', `/v1/blobs/${key}`)).status).toBe(404);
    expect(s.trees.current()?.hot?.entries).toBe(0);
  });
});
