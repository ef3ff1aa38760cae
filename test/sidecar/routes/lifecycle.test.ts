import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { DiskLocation, HashKeyStorage, type Location, type ReadOpOptions } from '@tarnjs/tarn';
import { describe, expect, it } from 'vitest';
import { freshPath, tempDir } from '../../helpers/tmp.js';
import { serve } from './server.js';

const base = tempDir('tarn-sidecar-lifecycle-');

/** A disk lake whose reads take `ms`: a slow level, as S3 far away or a busy Redis is. */
function slowLake(root: string, ms: number): Location {
  const disk = new DiskLocation(root);
  const read = disk.read.bind(disk);
  disk.read = async (key: string, options?: ReadOpOptions) => {
    await sleep(ms);
    return read(key, options);
  };
  return disk;
}

describe('the idle timeout', () => {
  it('never cuts a request the server is still working on (a slow level), only a waiting client', async () => {
    const root = freshPath(base);
    const { key } = await new HashKeyStorage(root).put(Buffer.from('hello'));
    const s = await serve(base, new HashKeyStorage(slowLake(root, 1500)), {
      settings: { idleTimeoutMs: 500 },
    });
    try {
      // Three idle periods pass while the level answers; the client, who waits, gets the value.
      const slow = await s.call('GET', `/v1/blobs/${key}`);
      expect([slow.status, slow.text]).toEqual([200, 'hello']);
      // A client that sends half a body and stalls is the one cut.
      const conn = connect(s.socket);
      const parts: Buffer[] = [];
      conn.on('data', (c: Buffer) => parts.push(c));
      const closed = new Promise<number>((resolve) => {
        const t = Date.now();
        conn.on('error', () => undefined);
        conn.once('close', () => resolve(Date.now() - t));
      });
      conn.write('PUT /v1/blobs HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n12345');
      expect(await closed).toBeLessThan(5000);
      // Told why before the cut.
      const answer = Buffer.concat(parts).toString();
      expect(answer).toMatch(/^HTTP\/1\.1 408 /);
      expect(answer).toContain('"code":"TARN_TIMEOUT"');
    } finally {
      await s.close();
    }
  });
});

describe('closing', () => {
  it('answers a request that arrives while closing with a 503 TARN_UNAVAILABLE problem, and finishes the one in flight', async () => {
    const root = freshPath(base);
    const s = await serve(base, new HashKeyStorage(root));
    const conn = connect(s.socket);
    const parts: Buffer[] = [];
    conn.on('data', (c: Buffer) => parts.push(c));
    const closed = new Promise<void>((resolve) => conn.once('close', () => resolve()));
    // An upload in flight (half its body sent) when the server starts closing…
    conn.write('PUT /v1/blobs HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n12345');
    await sleep(100);
    const closing = s.close();
    await sleep(100);
    // …is finished; the next request on the same connection is refused with a problem.
    conn.write('67890GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    await closed;
    await closing;
    const text = Buffer.concat(parts).toString('utf8');
    const answers = text.split(/(?=HTTP\/1\.1 )/);
    expect(answers[0]).toMatch(/^HTTP\/1\.1 201 /);
    expect(answers[0]).toContain('"status":"stored"');
    expect(answers[1]).toMatch(/^HTTP\/1\.1 503 /);
    expect(answers[1]).toContain('content-type: application/problem+json');
    expect(answers[1]).toContain('"code":"TARN_UNAVAILABLE"');
    expect(answers[1]?.toLowerCase()).toContain('retry-after: 1');
  });
});

describe('ranges', () => {
  it('are read through the handle the lookup opened: a delete racing a Range GET never makes a 500', async () => {
    const root = freshPath(base);
    const s = await serve(base, new HashKeyStorage(root), { settings: { allowDelete: true } });
    try {
      const seen: Record<number, number> = {};
      for (let i = 0; i < 150; i++) {
        const data = Buffer.from(`value ${i} `.repeat(400));
        const { key } = (await s.call('PUT', '/v1/blobs', { body: data })).json;
        const [got] = await Promise.all([
          s.call('GET', `/v1/blobs/${key}`, { headers: { range: 'bytes=10-20' } }),
          sleep(i % 4).then(() => s.call('DELETE', `/v1/blobs/${key}`)),
        ]);
        seen[got.status] = (seen[got.status] ?? 0) + 1;
        if (got.status === 206) expect(got.body).toEqual(data.subarray(10, 21));
        else expect([got.status, got.json.code]).toEqual([404, 'TARN_NOT_FOUND']);
      }
      expect(Object.keys(seen).every((status) => status === '206' || status === '404')).toBe(true);
    } finally {
      await s.close();
    }
  });

  it('StoredValue.range reads a file value through its descriptor, even after a delete', async () => {
    const root = freshPath(base);
    const storage = new HashKeyStorage(root);
    const data = Buffer.from('0123456789'.repeat(10_000));
    const key = await storage.write(data);
    await using value = await storage.read(key);
    await storage.delete(key);
    const read = async (r: NodeJS.ReadableStream) => {
      const parts: Buffer[] = [];
      for await (const c of r) parts.push(c as Buffer);
      return Buffer.concat(parts);
    };
    // Through the descriptor, after the delete.
    expect(await read(value.range(5, 14))).toEqual(data.subarray(5, 15));
    expect(await read(value.range(99_990, 99_999))).toEqual(data.subarray(99_990));
  });
});

describe('Expect: 100-continue', () => {
  /** Sends headers, waits for the first answer, then (if told to go on) the body; everything received. */
  async function expecting(socket: string, length: number, body: Buffer): Promise<string> {
    const conn = connect(socket);
    const parts: Buffer[] = [];
    conn.on('error', () => undefined);
    const closed = new Promise<void>((resolve) => conn.once('close', () => resolve()));
    let sent = false;
    conn.on('data', (c: Buffer) => {
      parts.push(c);
      // Told to go on: send the body, without ending our side (Node takes a half-close for a
      // client that went away). The server closes the connection after its answer.
      if (!sent && Buffer.concat(parts).toString('latin1').startsWith('HTTP/1.1 100 ')) {
        sent = true;
        conn.write(body);
      }
    });
    conn.write(
      `PUT /v1/blobs HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: ${length}\r\nConnection: close\r\n\r\n`,
    );
    await closed;
    return Buffer.concat(parts).toString('utf8');
  }

  it('tells an upload to go on only when its body is read: a refusal by its headers costs no upload', async () => {
    const root = freshPath(base);
    const s = await serve(base, new HashKeyStorage(root), { settings: { bodyLimit: 1000 } });
    try {
      const refused = await expecting(s.socket, 5000, Buffer.alloc(5000));
      expect(refused).toMatch(/^HTTP\/1\.1 413 /);
      expect(refused).not.toContain('100 Continue');
      const body = Buffer.from('continued');
      const stored = await expecting(s.socket, body.length, body);
      expect(stored).toMatch(/^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 201 /);
      expect(stored).toContain('"status":"stored"');
    } finally {
      await s.close();
    }
  });
});
