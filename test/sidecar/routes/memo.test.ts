import { setTimeout as sleep } from 'node:timers/promises';
import { DiskLocation, HashKeyStorage, Levels } from '@tarnjs/tarn';
import { MEMO_ENTRY_MAX } from '@tarnjs/tarn/sidecar-api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256 } from '../../helpers/data.js';
import { freshPath, tempDir } from '../../helpers/tmp.js';
import { type Served, serve } from './server.js';

const base = tempDir();

describe('memo and lease routes on a disk lake', () => {
  let root: string;
  let s: Served;
  beforeAll(async () => {
    root = freshPath(base);
    s = await serve(base, new HashKeyStorage(root));
  });
  afterAll(() => s.close());

  it('stores, reads and forgets memo entries under call keys', async () => {
    const callKey = sha256('call 1');
    const entry = JSON.stringify({ tarn: 1, value: sha256('result'), format: 'json' });
    expect((await s.call('GET', `/v1/memo/${callKey}`)).json.code).toBe('TARN_NOT_FOUND');
    const put = await s.call('PUT', `/v1/memo/${callKey}`, {
      body: entry,
      headers: { 'content-type': 'application/json' },
    });
    expect([put.status, put.json]).toEqual([201, { callKey, status: 'stored' }]);
    const again = await s.call('PUT', `/v1/memo/${callKey}`, { body: entry });
    expect(again.json).toEqual({ callKey, status: 'existed' });
    const got = await s.call('GET', `/v1/memo/${callKey}`);
    expect([got.status, got.text, got.headers['content-type']]).toEqual([
      200,
      entry,
      'application/octet-stream',
    ]);
    // Another result for the same call (a non-deterministic function, another pod): the first stays,
    // whether the other entry's size differs or not (a disk index compares sizes only: the route
    // compares the bytes).
    for (const different of [entry.replace('json', 'v8'), entry.replace('json', 'jsoN')]) {
      const other = await s.call('PUT', `/v1/memo/${callKey}`, { body: different });
      expect([other.status, other.json.code]).toEqual([409, 'TARN_COLLISION']);
      expect((await s.call('GET', `/v1/memo/${callKey}`)).text).toBe(entry);
    }
    expect((await s.call('DELETE', `/v1/memo/${callKey}`)).status).toBe(204);
    expect((await s.call('DELETE', `/v1/memo/${callKey}`)).status).toBe(404);
    expect((await s.call('GET', `/v1/memo/${callKey}`)).status).toBe(404);
  });

  it('refuses entries over 64 KiB and call keys that are not sha256 hex', async () => {
    const callKey = sha256('call big');
    const big = await s.call('PUT', `/v1/memo/${callKey}`, { body: Buffer.alloc(MEMO_ENTRY_MAX + 1, 1) });
    expect([big.status, big.json.code]).toEqual([413, 'TARN_TOO_LARGE']);
    const max = await s.call('PUT', `/v1/memo/${callKey}`, { body: Buffer.alloc(MEMO_ENTRY_MAX, 1) });
    expect(max.status).toBe(201);
    for (const bad of ['abc', 'A'.repeat(64), '..%2f..%2fx', 'a'.repeat(65)]) {
      const a = await s.call('GET', `/v1/memo/${bad}`);
      expect([bad, a.status, a.json.code]).toEqual([bad, 400, 'TARN_BAD_REQUEST']);
    }
  });

  it('acquires, renews and releases single-flight leases', async () => {
    const name = sha256('lease 1');
    const url = `/v1/leases/${name}`;
    const first = await s.call('POST', url, { json: { action: 'acquire', ttlMs: 5000 } });
    expect(first.status).toBe(200);
    expect(first.json).toMatchObject({ acquired: true, ttlMs: 5000 });
    expect(first.json.token).toMatch(/^[0-9a-f]{32}$/);
    const token = first.json.token;
    expect((await s.call('POST', url, { json: { action: 'acquire', ttlMs: 5000 } })).json).toEqual({
      acquired: false,
    });
    const renewed = await s.call('POST', url, { json: { action: 'renew', token } });
    expect(renewed.json).toEqual({ acquired: true, token, ttlMs: 5000 });
    // A token for another lease name renews nothing.
    const wrong = await s.call('POST', `/v1/leases/${sha256('other')}`, { json: { action: 'renew', token } });
    expect([wrong.status, wrong.json.code]).toEqual([409, 'TARN_LEASE_LOST']);
    expect((await s.call('POST', url, { json: { action: 'release', token } })).status).toBe(204);
    expect((await s.call('POST', url, { json: { action: 'release', token } })).status).toBe(204);
    const lost = await s.call('POST', url, { json: { action: 'renew', token } });
    expect([lost.status, lost.json.code]).toEqual([409, 'TARN_LEASE_LOST']);
    const next = await s.call('POST', url, { json: { action: 'acquire', ttlMs: 5000 } });
    expect(next.json.acquired).toBe(true);
    await s.call('POST', url, { json: { action: 'release', token: next.json.token } });
  });

  it('lets a lease go when its holder stops renewing it', async () => {
    const url = `/v1/leases/${sha256('lease 2')}`;
    const first = await s.call('POST', url, { json: { action: 'acquire', ttlMs: 200 } });
    expect(first.json.acquired).toBe(true);
    await sleep(500);
    const renew = await s.call('POST', url, { json: { action: 'renew', token: first.json.token } });
    expect([renew.status, renew.json.code]).toEqual([409, 'TARN_LEASE_LOST']);
    const second = await s.call('POST', url, { json: { action: 'acquire', ttlMs: 200 } });
    expect(second.json.acquired).toBe(true);
  });

  it('refuses bad lease requests', async () => {
    const url = `/v1/leases/${sha256('lease 3')}`;
    for (const json of [
      { action: 'acquire', ttlMs: 1 },
      { action: 'acquire', ttlMs: 10 * 60_000 + 1 },
      { action: 'acquire' },
      { action: 'steal', token: 'a'.repeat(32) },
      { action: 'renew', token: 'xyz' },
      { action: 'acquire', ttlMs: 1000, extra: 1 },
    ]) {
      const a = await s.call('POST', url, { json });
      expect([JSON.stringify(json), a.status, a.json.code]).toEqual([
        JSON.stringify(json),
        400,
        'TARN_BAD_REQUEST',
      ]);
    }
    const badName = await s.call('POST', '/v1/leases/XYZ', { json: { action: 'acquire', ttlMs: 1000 } });
    expect([badName.status, badName.json.code]).toEqual([400, 'TARN_BAD_REQUEST']);
    // An odd number of digits is no lease name: the schema says so (the contract and OpenAPI with it).
    const odd = await s.call('POST', '/v1/leases/abc', { json: { action: 'acquire', ttlMs: 1000 } });
    expect([odd.status, odd.json.code]).toEqual([400, 'TARN_BAD_REQUEST']);
    expect(odd.json.detail).toContain('even number');
  });

  it('releases every lease when the app closes', async () => {
    const lake = freshPath(base);
    const t = await serve(base, new HashKeyStorage(lake));
    const name = sha256('lease 4');
    const a = await t.call('POST', `/v1/leases/${name}`, { json: { action: 'acquire', ttlMs: 60_000 } });
    expect(a.json.acquired).toBe(true);
    await t.close();
    // The lock file is gone: another holder gets it at once, not in a minute.
    const lease = await new DiskLocation(lake).lease(name, 1000);
    expect(lease).not.toBeNull();
    await lease?.release();
  });
});

describe('a tree without a memo index', () => {
  it('answers 501 on memo routes (and leases from its disk lakes)', async () => {
    const s = await serve(
      base,
      new HashKeyStorage(new Levels(new DiskLocation(freshPath(base)), new DiskLocation(freshPath(base)))),
    );
    try {
      const a = await s.call('GET', `/v1/memo/${sha256('x')}`);
      expect([a.status, a.json.code]).toEqual([501, 'TARN_UNSUPPORTED']);
      const p = await s.call('PUT', `/v1/memo/${sha256('x')}`, { body: '{}' });
      expect([p.status, p.json.code]).toEqual([501, 'TARN_UNSUPPORTED']);
      const l = await s.call('POST', `/v1/leases/${sha256('x')}`, {
        json: { action: 'acquire', ttlMs: 1000 },
      });
      expect(l.json.acquired).toBe(true);
    } finally {
      await s.close();
    }
  });
});
