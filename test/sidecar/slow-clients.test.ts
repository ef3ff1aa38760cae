import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { createConnection, type Socket } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pseudoRandom, sha256 } from '../helpers/data.js';
import { blobs } from '../helpers/lake.js';
import { fdCount, fdTargets } from '../helpers/proc.js';
import { tempDir } from '../helpers/tmp.js';
import { until } from '../helpers/wait.js';
import { call, type Sidecar, startSidecar } from './serve-process.js';

const dir = tempDir('tarn-slow-');
const lake = join(dir, 'lake');

// Small timeouts, each far enough from the others that which one cut a client is plain.
const HEADERS_MS = 1000;
const IDLE_MS = 1500;
const REQUEST_MS = 4000;
/** How late past its timeout a cut may come (Node checks headers and request timeouts on a timer). */
const LATE_MS = 1500;

/** Temp files in the lake (a lake's `.tmp` folder). */
function temps(): string[] {
  try {
    return readdirSync(join(lake, '.tmp'));
  } catch {
    return [];
  }
}

/** A raw connection to the socket: the test writes bytes when it wants, and sees when the server cuts. */
class Raw {
  readonly socket: Socket;
  readonly opened = Date.now();
  received = Buffer.alloc(0);
  bytes = 0;
  /** Milliseconds from the connection to its close by the server. */
  readonly closed: Promise<number>;

  constructor(path: string, keep = true) {
    this.socket = createConnection(path);
    this.socket.on('data', (d: Buffer) => {
      this.bytes += d.byteLength;
      if (keep) this.received = Buffer.concat([this.received, d]);
    });
    this.socket.on('error', () => undefined);
    this.closed = new Promise((resolve) => this.socket.on('close', () => resolve(Date.now() - this.opened)));
  }

  write(data: string | Buffer): Promise<void> {
    return new Promise((resolve, reject) => this.socket.write(data, (e) => (e ? reject(e) : resolve())));
  }

  /** Writes `chunk` every `everyMs` until the server closes the connection. */
  async trickle(chunk: string | Buffer, everyMs: number): Promise<number> {
    let open = true;
    this.closed.then(() => {
      open = false;
    });
    while (open) {
      await this.write(chunk).catch(() => undefined);
      await sleep(everyMs);
    }
    return this.closed;
  }

  /** The status line, headers and body of the one answer received, if any. */
  answer(): { status: number; headers: Record<string, string>; body: string } | undefined {
    const text = this.received.toString('latin1');
    const end = text.indexOf('\r\n\r\n');
    if (end < 0) return undefined;
    const [line, ...rest] = text.slice(0, end).split('\r\n');
    const headers: Record<string, string> = {};
    for (const h of rest) {
      const at = h.indexOf(':');
      headers[h.slice(0, at).toLowerCase()] = h.slice(at + 1).trim();
    }
    return { status: Number(line?.split(' ')[1]), headers, body: text.slice(end + 4) };
  }
}

/** Meanwhile, other clients are served as usual: a PUT and a GET of a small value, each fast. */
async function othersServed(socket: string, tag: string): Promise<void> {
  const value = Buffer.from(`served meanwhile: ${tag}`);
  const started = Date.now();
  const put = await call(socket, 'PUT', '/v1/blobs', value);
  expect(put.status).toBe(201);
  const get = await call(socket, 'GET', `/v1/blobs/${sha256(value)}`);
  expect([get.status, get.text]).toEqual([200, value.toString()]);
  expect(Date.now() - started).toBeLessThan(1000);
}

describe('tarn serve and slow clients', () => {
  let s: Sidecar;
  let pid: number;
  let fd0: number;

  beforeAll(async () => {
    mkdirSync(dir, { recursive: true });
    const config = join(dir, 'tarn.yaml');
    writeFileSync(
      config,
      [
        'location: ./lake',
        'serve:',
        '  socket: ./tarn.sock',
        `  headersTimeoutMs: ${HEADERS_MS}`,
        `  idleTimeoutMs: ${IDLE_MS}`,
        `  requestTimeoutMs: ${REQUEST_MS}`,
        '',
      ].join('\n'),
    );
    s = await startSidecar(['--config', config]);
    pid = s.child.pid as number;
    // One request of each kind first, so what they load once (modules, the lake's folders) is counted.
    await othersServed(s.socket, 'warm-up');
    await sleep(200);
    fd0 = fdCount(pid);
  });
  afterAll(() => s?.stop());

  it('cuts a client that sends its headers slowly (slowloris) after headersTimeoutMs, with a 408 problem', async () => {
    const raw = new Raw(s.socket);
    await raw.write('GET /healthz HTTP/1.1\r\nHost: tarn\r\n');
    // A header line every 300 ms: never idle, never done.
    let n = 0;
    const trickling = (async () => {
      while (raw.socket.writable && !raw.socket.destroyed) {
        await raw.write(`X-Slow-${n++}: ${'a'.repeat(10)}\r\n`).catch(() => undefined);
        await sleep(300);
      }
    })();
    await othersServed(s.socket, 'slowloris');
    const after = await raw.closed;
    await trickling;
    expect(after).toBeGreaterThanOrEqual(HEADERS_MS - 100);
    expect(after).toBeLessThan(HEADERS_MS + LATE_MS);
    const answer = raw.answer();
    expect(answer?.status).toBe(408);
    expect(answer?.headers['content-type']).toBe('application/problem+json');
    expect(JSON.parse(answer?.body ?? '{}')).toMatchObject({ status: 408, code: 'TARN_TIMEOUT' });
  });

  it('answers what Node cannot parse (garbage, headers over its limit) with a 400 problem too', async () => {
    for (const request of [
      'NOT HTTP AT ALL\r\n\r\n',
      `GET /healthz HTTP/1.1\r\nHost: tarn\r\nX-Big: ${'b'.repeat(20_000)}\r\n\r\n`,
    ]) {
      const raw = new Raw(s.socket);
      await raw.write(request).catch(() => undefined);
      await raw.closed;
      const answer = raw.answer();
      expect([answer?.status, answer?.headers['content-type']]).toEqual([400, 'application/problem+json']);
      expect(JSON.parse(answer?.body ?? '{}')).toMatchObject({ status: 400, code: 'TARN_BAD_REQUEST' });
    }
  });

  it('cuts an upload that stalls midway after idleTimeoutMs, with a 408 problem: nothing stored, no temp file', async () => {
    const before = blobs(lake);
    const value = pseudoRandom('stalls', 1 << 20);
    const raw = new Raw(s.socket);
    await raw.write(
      `PUT /v1/blobs HTTP/1.1\r\nHost: tarn\r\nContent-Type: application/octet-stream\r\nContent-Length: ${value.length}\r\n\r\n`,
    );
    await raw.write(value.subarray(0, 256 << 10));
    await until(() => temps().length === 1, 'the upload is written to a temp file');
    await othersServed(s.socket, 'stalled upload');
    const after = await raw.closed;
    expect(after).toBeGreaterThanOrEqual(IDLE_MS - 100);
    expect(after).toBeLessThan(IDLE_MS + LATE_MS);
    // Told why, as it may still be listening.
    const answer = raw.answer();
    expect([answer?.status, answer?.headers['content-type']]).toEqual([408, 'application/problem+json']);
    expect(JSON.parse(answer?.body ?? '{}')).toMatchObject({ status: 408, code: 'TARN_TIMEOUT' });
    await until(() => temps().length === 0, 'the temp file is removed', 5000);
    expect(blobs(lake)).toEqual([...before, sha256(Buffer.from('served meanwhile: stalled upload'))].sort());
  });

  it('cuts a body that trickles for longer than requestTimeoutMs, with a 408 problem: nothing stored, no temp file', async () => {
    const before = blobs(lake);
    const raw = new Raw(s.socket);
    await raw.write(
      `PUT /v1/blobs HTTP/1.1\r\nHost: tarn\r\nContent-Type: application/octet-stream\r\nContent-Length: ${1 << 20}\r\n\r\n`,
    );
    // 1 KiB every 250 ms: never idle for IDLE_MS, never done before REQUEST_MS.
    const closed = raw.trickle(Buffer.alloc(1024, 7), 250);
    await until(() => temps().length === 1, 'the upload is written to a temp file');
    await othersServed(s.socket, 'trickle');
    const after = await closed;
    expect(after).toBeGreaterThanOrEqual(REQUEST_MS - 100);
    expect(after).toBeLessThan(REQUEST_MS + LATE_MS);
    const answer = raw.answer();
    expect(answer?.status).toBe(408);
    expect(answer?.headers['content-type']).toBe('application/problem+json');
    expect(JSON.parse(answer?.body ?? '{}')).toMatchObject({ status: 408, code: 'TARN_TIMEOUT' });
    await until(() => temps().length === 0, 'the temp file is removed', 5000);
    expect(blobs(lake)).toEqual([...before, sha256(Buffer.from('served meanwhile: trickle'))].sort());
  });

  it('closes a GET whose client stopped reading after idleTimeoutMs, and the value file with it', async () => {
    const value = pseudoRandom('large', 32 << 20);
    const put = await call(s.socket, 'PUT', '/v1/blobs', value);
    expect(put.status).toBe(201);
    const key = sha256(value);
    const idle = fdCount(pid);
    const raw = new Raw(s.socket, false);
    await raw.write(`GET /v1/blobs/${key} HTTP/1.1\r\nHost: tarn\r\n\r\n`);
    await until(() => raw.bytes > 0, 'the answer starts');
    raw.socket.pause(); // reads nothing more: the server's writes fill the socket's buffers and stall
    // While it stalls, the server holds the connection and the value's file.
    await sleep(300);
    const held = fdTargets(pid);
    expect(held.filter((t) => t.includes(key.slice(2)))).toHaveLength(1);
    await othersServed(s.socket, 'stopped reading');
    // No byte moves for IDLE_MS: the server cuts it and closes the file (the count of descriptors
    // comes back to what it was before the GET).
    await until(
      () => fdCount(pid) <= idle,
      'the server lets go of the connection and the file',
      IDLE_MS + LATE_MS + 1000,
    );
    raw.socket.resume();
    await raw.closed;
    expect(raw.bytes).toBeLessThan(value.length);
    expect(fdTargets(pid).filter((t) => t.includes(key.slice(2)))).toEqual([]);
  });

  it('has let go of every descriptor it opened for these clients', async () => {
    await until(() => fdCount(pid) <= fd0, `fds back to ${fd0}`, 5000).catch(() => undefined);
    expect(fdCount(pid) <= fd0 ? [] : fdTargets(pid)).toEqual([]);
  });
});
