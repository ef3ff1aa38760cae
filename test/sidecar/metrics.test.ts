import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { type AddressInfo, createServer } from 'node:net';
import { join } from 'node:path';
import { DiskLocation, HashKeyStorage } from '@tarnjs/tarn';
import { describe, expect, it } from 'vitest';
import { tarn } from '../helpers/spawn.js';
import { freshPath, tempDir } from '../helpers/tmp.js';
import { call, sample, startSidecar } from './serve-process.js';

const base = tempDir('tarn-metrics-');
const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');
const OCTETS = { 'content-type': 'application/octet-stream' };

describe('metrics', () => {
  it('counts requests, latency and bytes by route, per-level hits, copies and misses, memo hits and misses', async () => {
    const dir = freshPath(base, 'levels');
    mkdirSync(dir);
    // A value only in the bottom level: the first read hits there and copies it up.
    const value = 'only in the bottom level, at first';
    const key = await new HashKeyStorage(new DiskLocation(join(dir, 'bottom'))).write(Buffer.from(value));
    const file = join(dir, 'tarn.yaml');
    writeFileSync(
      file,
      [
        'location:',
        '  kind: levels',
        '  levels:',
        '    - { location: ./top, name: ssd }',
        '    - ./bottom',
        'memo:',
        '  index: ./memo',
        '',
      ].join('\n'),
    );
    // No hot cache: every GET goes to the tree, whose per-level counters are the subject here.
    const s = await startSidecar([
      '--config',
      file,
      '--metrics-port',
      '0',
      '--metrics-host',
      '127.0.0.1',
      '--hot-cache',
      '0',
    ]);
    try {
      expect(s.metricsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
      const scrape = async () => {
        const a = await call(undefined, 'GET', s.metricsUrl as string);
        expect(a.status).toBe(200);
        expect(a.headers['content-type']).toMatch(/^text\/plain/);
        return a.text;
      };
      const before = await scrape();
      expect(sample(before, 'tarn_sidecar_ready')).toBe(1);
      expect(sample(before, 'tarn_sidecar_config_generation')).toBe(1);
      expect(sample(before, 'process_cpu_user_seconds_total')).toBeGreaterThan(0); // default metrics
      expect(sample(before, 'tarn_sidecar_memo_lookups_total{result="hit"}')).toBe(0);

      expect((await call(s.socket, 'GET', `/v1/blobs/${key}`)).text).toBe(value);
      let m = await scrape();
      expect(sample(m, 'tarn_sidecar_level_hits_total{combinator="/",level="1 disk"}')).toBe(1);
      expect(sample(m, 'tarn_sidecar_level_copies_total{combinator="/",level="ssd"}')).toBe(1);
      expect((await call(s.socket, 'GET', `/v1/blobs/${key}`)).text).toBe(value);
      const missing = sha256('never stored');
      expect((await call(s.socket, 'GET', `/v1/blobs/${missing}`)).status).toBe(404);
      const upload = Buffer.alloc(1000, 7);
      expect((await call(s.socket, 'PUT', '/v1/blobs', upload, OCTETS)).status).toBe(201);
      expect((await call(s.socket, 'GET', '/no/such/route')).status).toBe(404);

      // Memo: a miss, an entry stored, a hit.
      const callKey = sha256('a call');
      expect((await call(s.socket, 'GET', `/v1/memo/${callKey}`)).status).toBe(404);
      expect((await call(s.socket, 'PUT', `/v1/memo/${callKey}`, '{"key":"x"}', OCTETS)).status).toBe(201);
      expect((await call(s.socket, 'GET', `/v1/memo/${callKey}`)).status).toBe(200);

      m = await scrape();
      expect(sample(m, 'tarn_sidecar_level_hits_total{combinator="/",level="ssd"}')).toBe(1);
      expect(sample(m, 'tarn_sidecar_level_hits_total{combinator="/",level="1 disk"}')).toBe(1);
      expect(sample(m, 'tarn_sidecar_level_misses_total{combinator="/"}')).toBeGreaterThanOrEqual(1);
      expect(sample(m, 'tarn_sidecar_requests_total{route="getBlob",status="200"}')).toBe(2);
      expect(sample(m, 'tarn_sidecar_requests_total{route="getBlob",status="404"}')).toBe(1);
      expect(sample(m, 'tarn_sidecar_requests_total{route="putBlob",status="201"}')).toBe(1);
      expect(sample(m, 'tarn_sidecar_requests_total{route="none",status="404"}')).toBe(1);
      expect(sample(m, 'tarn_sidecar_request_duration_seconds_count{route="getBlob"}')).toBe(3);
      expect(sample(m, 'tarn_sidecar_request_bytes_total{route="putBlob"}')).toBe(1000);
      expect(sample(m, 'tarn_sidecar_response_bytes_total{route="getBlob"}')).toBeGreaterThanOrEqual(
        2 * value.length,
      );
      expect(sample(m, 'tarn_sidecar_memo_lookups_total{result="hit"}')).toBe(1);
      expect(sample(m, 'tarn_sidecar_memo_lookups_total{result="miss"}')).toBe(1);

      // The metrics server serves /metrics and nothing else (the data API never meets TCP).
      const other = await call(
        undefined,
        'GET',
        (s.metricsUrl as string).replace('/metrics', '/v1/describe'),
      );
      expect(other.status).toBe(404);
    } finally {
      expect((await s.stop()).code).toBe(0);
    }
  });

  it('counts hot-cache hits and misses and the memory it holds', async () => {
    const s = await startSidecar([
      '--storage',
      freshPath(base),
      '--metrics-port',
      '0',
      '--metrics-host',
      '127.0.0.1',
    ]);
    try {
      const scrape = async () => (await call(undefined, 'GET', s.metricsUrl as string)).text;
      const value = Buffer.alloc(1000, 3);
      const key = JSON.parse((await call(s.socket, 'PUT', '/v1/blobs', value, OCTETS)).text).key as string;
      const missing = sha256('not stored');
      for (const k of [key, key, missing]) await call(s.socket, 'GET', `/v1/blobs/${k}`);
      const m = await scrape();
      expect(sample(m, 'tarn_sidecar_hot_cache_lookups_total{result="hit"}')).toBe(2);
      expect(sample(m, 'tarn_sidecar_hot_cache_lookups_total{result="miss"}')).toBe(1);
      expect(sample(m, 'tarn_sidecar_hot_cache_bytes')).toBe(1000 + 256);
      expect(sample(m, 'tarn_sidecar_hot_cache_evictions_total')).toBe(0);
    } finally {
      expect((await s.stop()).code).toBe(0);
    }
  });

  it('no metrics port unless asked for: nothing listens on TCP', async () => {
    const s = await startSidecar(['--storage', freshPath(base)]);
    try {
      expect(s.metricsUrl).toBeUndefined();
      expect(s.banner).not.toContain('metrics:');
    } finally {
      expect((await s.stop()).code).toBe(0);
    }
  });

  it('a metrics port already taken fails the start with a clear error, and nothing is left bound', async () => {
    const taken = createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', () => r()));
    const port = (taken.address() as AddressInfo).port;
    const lake = freshPath(base);
    const r = await tarn([
      'serve',
      '--storage',
      lake,
      '--metrics-port',
      String(port),
      '--metrics-host',
      '127.0.0.1',
    ]);
    taken.close();
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`cannot listen on the metrics address 127.0.0.1:${port}`);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(existsSync(join(lake, 'tarn.sock'))).toBe(false);
  });
});
