import { createServer, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ConfigError, DiskLocation, HashKeyStorage, NginxLocation, RemoteError } from '@tarnjs/tarn';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { available } from '../../../bed/index.js';
import { type Nginx, startNginx } from '../../../bed/services.js';
import { sha256 } from '../../../helpers/data.js';
import { tempDir } from '../../../helpers/tmp.js';

/**
 * A fault injector in front of the real nginx: the first `failures` requests get a 503 or a reset
 * connection, the rest are forwarded.
 */
async function flakyProxy(target: Nginx, failures: number, mode: '503' | 'reset') {
  let failed = 0;
  const arrivals: number[] = [];
  const server = createServer((req, res) => {
    arrivals.push(performance.now());
    if (failed < failures) {
      failed++;
      if (mode === 'reset') req.socket.destroy();
      else res.writeHead(503).end('busy');
      return;
    }
    const up = httpRequest(
      { host: '127.0.0.1', port: target.port, path: req.url, method: req.method, headers: req.headers },
      (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.pipe(res);
      },
    );
    req.pipe(up);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`,
    failedSoFar: () => failed,
    /** When each request arrived (ms, monotonic). */
    arrivals: () => [...arrivals],
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

describe.runIf(available('nginx'))('Nginx location', () => {
  const root = `${tempDir()}/lake`;
  const lake = new HashKeyStorage(new DiskLocation(root, { levels: [1, 1, -1] }));
  let nginx: Nginx;
  beforeAll(async () => {
    nginx = await startNginx(root);
  });
  afterAll(() => nginx?.stop());

  it("follows the lake's own layout from its config.yml", async () => {
    const key = await lake.write(Buffer.from('deep layout'));
    const storage = new HashKeyStorage(new NginxLocation(nginx.url));
    expect(await storage.read(key, (v) => v.text(), { verify: true })).toBe('deep layout');
    const keys: string[] = [];
    for await (const k of storage.keys()) keys.push(k);
    expect(keys).toContain(key);
    await storage.close();
  });

  it.each(['503', 'reset'] as const)('retries with backoff after a %s', async (mode) => {
    const key = await lake.write(Buffer.from(`retry ${mode}`));
    const proxy = await flakyProxy(nginx, 2, mode);
    const storage = new HashKeyStorage(new NginxLocation({ url: proxy.url, retries: 3 }));
    expect(await storage.read(key, (v) => v.text())).toBe(`retry ${mode}`);
    expect(proxy.failedSoFar()).toBe(2);
    // The backoff doubles from 100 ms: the retries came at least 100 ms, then 200 ms, after the failures.
    const [first, second, third] = proxy.arrivals();
    expect((second as number) - (first as number)).toBeGreaterThanOrEqual(95);
    expect((third as number) - (second as number)).toBeGreaterThanOrEqual(195);
    await storage.close();
    await proxy.close();
  });

  it('gives up with a RemoteError naming the server when it stays down', async () => {
    const proxy = await flakyProxy(nginx, 100, '503');
    const location = new NginxLocation({ url: proxy.url, retries: 2 });
    const err = await location.contains(sha256('x')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RemoteError);
    expect((err as Error).message).toContain(proxy.url);
    await location.close();
    await proxy.close();
    const down = new NginxLocation({ url: 'http://127.0.0.1:9/', retries: 1, connectTimeoutMs: 500 });
    await expect(down.contains(sha256('x'))).rejects.toThrow(/127\.0\.0\.1:9/);
    await down.close();
  });

  it('says so when the URL is not a lake', async () => {
    const location = new NginxLocation(`${nginx.url}2c/`);
    await expect(location.read(sha256('x'))).rejects.toThrow(/config\.yml.*tarn lake/);
    await location.close();
  });
});

describe('Nginx location options', () => {
  it('refuses credentials in the URL, which every message prints, without echoing them', () => {
    for (const url of ['http://reader:hunter2@127.0.0.1:1/lake/', 'http://hunter2@127.0.0.1:1/']) {
      const error = thrown(() => new NginxLocation({ url }));
      expect(error).toBeInstanceOf(ConfigError);
      expect(error).toMatchObject({ code: 'TARN_CONFIG', path: ['url'] });
      expect((error as Error).message).toMatch(/pass them in headers/);
      expect((error as Error).message).not.toContain('hunter2');
    }
    // An @ written %40 in the path is no user-info.
    expect(new NginxLocation('http://127.0.0.1:1/%40team/lake/').target).toBe(
      'http://127.0.0.1:1/%40team/lake/',
    );
  });
});

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  throw new Error('did not throw');
}
