import { chmodSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { HashKeyStorage } from '@tarnjs/tarn';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pseudoRandom, sha256 } from '../../helpers/data.js';
import { blobs, lakeObjects } from '../../helpers/lake.js';
import { freshPath, tempDir } from '../../helpers/tmp.js';
import { call, type Served, serve } from './server.js';

const base = tempDir();
const blobPath = (root: string, key: string) => join(root, key.slice(0, 2), key.slice(2));

function corrupt(root: string, key: string, bytes: Buffer | string): void {
  const path = blobPath(root, key);
  chmodSync(path, 0o644);
  writeFileSync(path, bytes);
  chmodSync(path, 0o444);
}

/** Temp files left in a lake (`.tmp`), empty when the lake has none yet. */
function temps(root: string): string[] {
  try {
    return readdirSync(join(root, '.tmp'));
  } catch {
    return [];
  }
}

async function* slowly(data: Buffer, parts: number, gapMs = 5): AsyncGenerator<Buffer> {
  const size = Math.ceil(data.length / parts);
  for (let i = 0; i < data.length; i += size) {
    yield data.subarray(i, i + size);
    await sleep(gapMs);
  }
}

/** Polls until `check` holds (for effects of a request the client has left). */
async function eventually(check: () => boolean, ms = 5000): Promise<void> {
  const until = Date.now() + ms;
  while (!check()) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await sleep(20);
  }
}

/**
 * A request whose body the client sends only in part: a Content-Length larger than what is sent
 * (`declared`), or chunked (`declared` undefined); then the client closes the connection.
 */
async function abandonedUpload(
  socket: string,
  sent: Buffer,
  declared?: number,
  during: () => void = () => undefined,
): Promise<void> {
  const conn = connect(socket);
  await new Promise<void>((resolve, reject) => conn.once('connect', resolve).once('error', reject));
  const head =
    declared === undefined
      ? 'PUT /v1/blobs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n'
      : `PUT /v1/blobs HTTP/1.1\r\nHost: x\r\nContent-Length: ${declared}\r\n\r\n`;
  conn.write(head);
  conn.write(
    declared === undefined
      ? Buffer.concat([Buffer.from(`${sent.length.toString(16)}\r\n`), sent, Buffer.from('\r\n')])
      : sent,
  );
  await sleep(300);
  during();
  conn.destroy();
}

/** Sends `text` as is and reads the answer until the server closes the connection. */
async function raw(socket: string, text: string): Promise<string> {
  const conn = connect(socket);
  const parts: Buffer[] = [];
  conn.on('data', (c: Buffer) => parts.push(c));
  conn.write(text);
  await new Promise<void>((resolve) => conn.once('close', () => resolve()));
  return Buffer.concat(parts).toString('utf8');
}

/** A chunked PUT over a raw socket, written until the server answers and closes. */
async function rawChunked(socket: string, path: string, body: AsyncIterable<Buffer>): Promise<string> {
  const conn = connect(socket);
  const parts: Buffer[] = [];
  let closed = false;
  conn.on('data', (c: Buffer) => parts.push(c));
  conn.on('error', () => undefined);
  const done = new Promise<void>((resolve) =>
    conn.once('close', () => {
      closed = true;
      resolve();
    }),
  );
  conn.write(`PUT ${path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n`);
  for await (const chunk of body) {
    if (closed) break;
    conn.write(`${chunk.length.toString(16)}\r\n`);
    conn.write(chunk);
    conn.write('\r\n');
  }
  // The last chunk, without ending our side: Node's server takes a client's half-close as the
  // client going away (it aborts the request and drops the answer), which real clients never do.
  if (!closed) conn.write('0\r\n\r\n');
  await done;
  return Buffer.concat(parts).toString('utf8');
}

describe('blob routes on a disk lake', () => {
  let root: string;
  let s: Served;
  beforeAll(async () => {
    root = freshPath(base);
    s = await serve(base, new HashKeyStorage(root), { settings: { bodyLimit: 8 << 20, allowDelete: true } });
  });
  afterAll(() => s.close());

  it('stores a body (any content type, or none, or chunked) and says whether it was new', async () => {
    const data = pseudoRandom('put', 3000);
    const first = await s.call('PUT', '/v1/blobs', { body: data });
    expect(first.status).toBe(201);
    expect(first.json).toEqual({ key: sha256(data), size: 3000, status: 'stored' });
    expect(first.headers['x-request-id']).toMatch(/\S/);
    const again = await s.call('PUT', '/v1/blobs', {
      body: data,
      headers: { 'content-type': 'application/json' },
    });
    expect(again.json).toEqual({ key: sha256(data), size: 3000, status: 'existed' });
    // A JSON-looking body is bytes like any other: never parsed.
    const json = await s.call('PUT', '/v1/blobs', {
      body: '{"a":1}',
      headers: { 'content-type': 'application/json' },
    });
    expect(json.json).toEqual({ key: sha256('{"a":1}'), size: 7, status: 'stored' });
    const chunked = pseudoRandom('chunked', 3 << 20);
    const c = await s.call('PUT', '/v1/blobs', { body: slowly(chunked, 7, 1) });
    expect(c.status).toBe(201);
    expect(c.json).toEqual({ key: sha256(chunked), size: 3 << 20, status: 'stored' });
    expect(blobs(root)).toContain(sha256(chunked));
    const empty = await s.call('PUT', '/v1/blobs', { body: Buffer.alloc(0) });
    expect(empty.json).toEqual({ key: sha256(''), size: 0, status: 'stored' });
  });

  it('streams a value back with its ETag, size and cache headers; HEAD answers without a body', async () => {
    const data = pseudoRandom('get', 5000);
    const { key } = (await s.call('PUT', '/v1/blobs', { body: data })).json;
    const got = await s.call('GET', `/v1/blobs/${key}`);
    expect(got.status).toBe(200);
    expect(got.body.equals(data)).toBe(true);
    expect(got.headers.etag).toBe(`"${key}"`);
    expect(got.headers['x-tarn-key']).toBe(key);
    expect(got.headers['content-length']).toBe('5000');
    expect(got.headers['accept-ranges']).toBe('bytes');
    expect(got.headers['cache-control']).toContain('immutable');
    // Upper case is the same key.
    expect((await s.call('GET', `/v1/blobs/${key.toUpperCase()}`)).body.equals(data)).toBe(true);
    const head = await s.call('HEAD', `/v1/blobs/${key}`);
    expect(head.status).toBe(200);
    expect(head.headers['content-length']).toBe('5000');
    expect(head.body.length).toBe(0);
    const missing = 'ab'.repeat(32);
    const h404 = await s.call('HEAD', `/v1/blobs/${missing}`);
    expect([h404.status, h404.body.length]).toEqual([404, 0]);
    const g404 = await s.call('GET', `/v1/blobs/${missing}`);
    expect(g404.status).toBe(404);
    expect(g404.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(g404.json).toMatchObject({
      type: 'https://tarn.dev/errors/TARN_NOT_FOUND',
      status: 404,
      code: 'TARN_NOT_FOUND',
      instance: g404.headers['x-request-id'],
    });
  });

  it('answers 304 to If-None-Match with the key, and serves one Range', async () => {
    const data = Buffer.from('0123456789');
    const { key } = (await s.call('PUT', '/v1/blobs', { body: data })).json;
    const url = `/v1/blobs/${key}`;
    const cached = await s.call('GET', url, { headers: { 'if-none-match': `"${key}"` } });
    expect([cached.status, cached.body.length, cached.headers.etag]).toEqual([304, 0, `"${key}"`]);
    expect((await s.call('GET', url, { headers: { 'if-none-match': '"other"' } })).status).toBe(200);
    const range = async (r: string, extra: Record<string, string> = {}) =>
      s.call('GET', url, { headers: { range: r, ...extra } });
    const cases: Array<[string, number, string, string | undefined]> = [
      ['bytes=0-4', 206, '01234', 'bytes 0-4/10'],
      ['bytes=5-', 206, '56789', 'bytes 5-9/10'],
      ['bytes=-3', 206, '789', 'bytes 7-9/10'],
      ['bytes=-30', 206, '0123456789', 'bytes 0-9/10'],
      ['bytes=8-100', 206, '89', 'bytes 8-9/10'],
      ['bytes=9-9', 206, '9', 'bytes 9-9/10'],
      ['items=0-1', 200, '0123456789', undefined],
    ];
    for (const [r, status, body, contentRange] of cases) {
      const a = await range(r);
      expect([r, a.status, a.text, a.headers['content-range']]).toEqual([r, status, body, contentRange]);
      if (status === 206) expect(a.headers['content-length']).toBe(String(body.length));
    }
    for (const r of [
      'bytes=10-',
      'bytes=10-20',
      'bytes=5-2',
      'bytes=-0',
      'bytes=0-1,3-4',
      'bytes=a-b',
      'bytes=-',
    ]) {
      const a = await range(r);
      expect([r, a.status, a.json?.code, a.headers['content-range']]).toEqual([
        r,
        416,
        'TARN_RANGE',
        'bytes */10',
      ]);
      expect(a.headers.etag).toBeUndefined();
    }
    // If-Range with another validator: the whole value.
    expect((await range('bytes=0-1', { 'if-range': '"x"' })).status).toBe(200);
    expect((await range('bytes=0-1', { 'if-range': `"${key}"` })).text).toBe('01');
    // A range of a large value is read from its file, not from its start.
    const big = pseudoRandom('big range', 3 << 20);
    const bigKey = (await s.call('PUT', '/v1/blobs', { body: big })).json.key;
    const tail = await s.call('GET', `/v1/blobs/${bigKey}`, { headers: { range: 'bytes=3000000-' } });
    expect(tail.status).toBe(206);
    expect(tail.body.equals(big.subarray(3000000))).toBe(true);
    const verified = await s.call('GET', `/v1/blobs/${bigKey}?verify=1`, { headers: { range: 'bytes=1-2' } });
    expect(verified.body.equals(big.subarray(1, 3))).toBe(true);
  });

  it('checks the expected key (header or ?expect=): a mismatch is 422 and stores nothing', async () => {
    const data = pseudoRandom('expected', 2000);
    const key = sha256(data);
    const wrong = sha256('something else');
    const before = lakeObjects(root);
    const bad = await s.call('PUT', '/v1/blobs', { body: data, headers: { 'x-tarn-expected-key': wrong } });
    expect([bad.status, bad.json.code]).toEqual([422, 'TARN_KEY_MISMATCH']);
    const badQuery = await s.call('PUT', `/v1/blobs?expect=${wrong}`, { body: slowly(data, 3, 1) });
    expect([badQuery.status, badQuery.json.code]).toEqual([422, 'TARN_KEY_MISMATCH']);
    expect(lakeObjects(root)).toEqual(before);
    const both = await s.call('PUT', `/v1/blobs?expect=${key}`, {
      body: data,
      headers: { 'x-tarn-expected-key': wrong },
    });
    expect([both.status, both.json.code]).toEqual([400, 'TARN_BAD_REQUEST']);
    const short = await s.call('PUT', '/v1/blobs', {
      body: data,
      headers: { 'x-tarn-expected-key': key.slice(1) },
    });
    expect([short.status, short.json.code]).toEqual([400, 'TARN_INVALID_KEY']);
    const notHex = await s.call('PUT', '/v1/blobs', {
      body: data,
      headers: { 'x-tarn-expected-key': '../../etc' },
    });
    expect([notHex.status, notHex.json.code]).toEqual([400, 'TARN_INVALID_KEY']);
    expect(lakeObjects(root)).toEqual(before);
    const ok = await s.call('PUT', `/v1/blobs?expect=${key.toUpperCase()}`, {
      body: data,
      headers: { 'x-tarn-expected-key': key },
    });
    expect(ok.json).toEqual({ key, size: 2000, status: 'stored' });
  });

  it('stores nothing and leaves no temp file when the client goes away mid-upload', async () => {
    const part = pseudoRandom('abandoned', 1_500_000);
    const before = blobs(root);
    // Midway, the upload is being written to a temp file in the lake.
    const writing = () => expect(temps(root).length).toBe(1);
    await abandonedUpload(s.socket, part, 3_000_000, writing);
    await abandonedUpload(s.socket, part, undefined, writing);
    await sleep(200);
    await eventually(() => temps(root).length === 0);
    expect(blobs(root)).toEqual(before);
    // The slot of each abandoned upload is free again.
    const ok = await s.call('PUT', '/v1/blobs', { body: 'after' });
    expect(ok.status).toBe(201);
    await eventually(() => temps(root).length === 0);
  });

  it('deletes where the config allows it', async () => {
    const { key } = (await s.call('PUT', '/v1/blobs', { body: 'delete me' })).json;
    expect((await s.call('DELETE', `/v1/blobs/${key}`)).status).toBe(204);
    expect(blobs(root)).not.toContain(key);
    const again = await s.call('DELETE', `/v1/blobs/${key}`);
    expect([again.status, again.json.code]).toEqual([404, 'TARN_NOT_FOUND']);
  });

  it('hands out the path of the file holding a value', async () => {
    const data = pseudoRandom('path', 4096);
    const { key } = (await s.call('PUT', '/v1/blobs', { body: data })).json;
    for (const q of ['', '?verify=1']) {
      const a = await s.call('GET', `/v1/blobs/${key}/path${q}`);
      expect(a.status).toBe(200);
      expect(a.json).toEqual({ key, path: blobPath(root, key), size: 4096 });
      expect(readFileSync(a.json.path).equals(data)).toBe(true);
    }
    const missing = await s.call('GET', `/v1/blobs/${'cd'.repeat(32)}/path`);
    expect([missing.status, missing.json.code]).toEqual([404, 'TARN_NOT_FOUND']);
  });

  it('verifies on request: a corrupt value is 500 TARN_CORRUPTION (small) or a cut connection (large), and quarantined', async () => {
    const small = Buffer.from('a small value, soon corrupt');
    // Written into the lake directly: a value PUT through the sidecar is also kept in its hot cache,
    // checked, and served from there (routes/hot.test.ts); this is about the tree's verified read.
    const lake = new HashKeyStorage(root);
    const key = await lake.write(small);
    await lake.close();
    corrupt(root, key, 'A small value, soon corrupt');
    // Unverified, the bytes are served as they are.
    expect((await s.call('GET', `/v1/blobs/${key}`)).status).toBe(200);
    const a = await s.call('GET', `/v1/blobs/${key}?verify=1`);
    expect([a.status, a.json.code]).toEqual([500, 'TARN_CORRUPTION']);
    expect(a.json.detail).toContain(key);
    expect(existsSync(blobPath(root, key))).toBe(false);
    expect(readdirSync(join(root, 'tools', 'quarantine'), { recursive: true }).length).toBeGreaterThan(0);

    const large = pseudoRandom('large, soon corrupt', 3 << 20);
    const bigKey = (await s.call('PUT', '/v1/blobs', { body: large })).json.key;
    const bad = Buffer.from(large);
    bad[bad.length - 1] = (bad[bad.length - 1] as number) ^ 1;
    corrupt(root, bigKey, bad);
    // The client gets an error (the connection is cut), never a complete body of wrong bytes.
    const got = await new Promise<{ bytes: number; complete: boolean; error?: unknown }>((resolve) => {
      const req = httpRequest(
        { socketPath: s.socket, path: `/v1/blobs/${bigKey}?verify=1`, agent: false },
        (res) => {
          let bytes = 0;
          res.on('data', (c: Buffer) => {
            bytes += c.length;
          });
          res.on('error', (error) => resolve({ bytes, complete: res.complete, error }));
          res.on('close', () => resolve({ bytes, complete: res.complete }));
        },
      );
      req.on('error', (error) => resolve({ bytes: 0, complete: false, error }));
      req.end();
    });
    expect(got.complete).toBe(false);
    expect(got.bytes).toBeLessThan(large.length);
    await eventually(() => !existsSync(blobPath(root, bigKey)));
    const path = await s.call('GET', `/v1/blobs/${bigKey}/path?verify=1`);
    expect(path.status).toBe(404);
  });

  it('refuses bad keys and paths with a clear 400, unknown routes with 404', async () => {
    const cases: Array<[string, string, number, string]> = [
      ['GET', '/v1/blobs/..%2f..%2fetc%2fpasswd', 400, 'TARN_INVALID_KEY'],
      ['GET', '/v1/blobs/..%2F..%2Fetc%2Fpasswd/path', 400, 'TARN_INVALID_KEY'],
      ['GET', '/v1/blobs/../../etc/passwd', 404, 'TARN_NO_ROUTE'],
      ['GET', `/v1/blobs/${'a'.repeat(300)}`, 400, 'TARN_INVALID_KEY'],
      ['GET', `/v1/blobs/${'a'.repeat(5000)}`, 400, 'TARN_BAD_REQUEST'],
      ['GET', '/v1/blobs/%zz', 400, 'TARN_BAD_REQUEST'],
      ['GET', `/v1/blobs/${'a'.repeat(63)}`, 400, 'TARN_INVALID_KEY'],
      ['GET', `/v1/blobs/${'a'.repeat(128)}`, 400, 'TARN_INVALID_KEY'],
      ['HEAD', `/v1/blobs/${'a'.repeat(62)}`, 400, ''],
      ['DELETE', '/v1/blobs/zzzzzzzzzz', 400, 'TARN_INVALID_KEY'],
      ['GET', `/v1/blobs/${'a'.repeat(64)}?verify=maybe`, 400, 'TARN_BAD_REQUEST'],
      ['GET', `/v1/blobs/${'a'.repeat(64)}?unknown=1`, 400, 'TARN_BAD_REQUEST'],
      ['GET', '/v1/keys?limit=0', 400, 'TARN_BAD_REQUEST'],
      ['GET', '/v1/keys?limit=abc', 400, 'TARN_BAD_REQUEST'],
      ['GET', '/v1/keys?after=xyz&limit=1', 400, 'TARN_INVALID_KEY'],
      ['POST', '/v1/blobs', 404, 'TARN_NO_ROUTE'],
      ['GET', '/v2/blobs', 404, 'TARN_NO_ROUTE'],
      ['GET', '/v1/blobs/%00', 400, 'TARN_INVALID_KEY'],
    ];
    for (const [method, path, status, code] of cases) {
      const a = await s.call(method, path);
      expect([method, path.slice(0, 60), a.status, a.json?.code ?? '']).toEqual([
        method,
        path.slice(0, 60),
        status,
        code,
      ]);
    }
    const field = await s.call('GET', '/v1/keys?limit=0');
    expect(field.json.detail).toContain('querystring.limit');
    const unknown = await s.call('GET', `/v1/blobs/${'a'.repeat(64)}?unknown=1`);
    expect(unknown.json.detail).toContain('unknown');
    // A JSON route given something else than JSON, or broken JSON.
    for (const body of ['{"keys": [', 'keys']) {
      const a = await s.call('POST', '/v1/fetch', { body, headers: { 'content-type': 'application/json' } });
      expect([a.status, a.json.code]).toEqual([400, 'TARN_BAD_REQUEST']);
    }
    const text = await s.call('POST', '/v1/fetch', {
      body: 'x',
      headers: { 'content-type': 'application/octet-stream' },
    });
    expect([text.status, text.json.code]).toEqual([400, 'TARN_BAD_REQUEST']);
    const fetch = await s.call('POST', '/v1/fetch', { json: { keys: ['abc'] } });
    expect([fetch.status, fetch.json.code]).toEqual([400, 'TARN_INVALID_KEY']);
    expect(fetch.json.detail).toContain('body.keys.0');
  });

  it('keeps a tame x-request-id and replaces any other', async () => {
    const kept = await s.call('GET', '/healthz', { headers: { 'x-request-id': 'abc.DEF_12-3' } });
    expect(kept.headers['x-request-id']).toBe('abc.DEF_12-3');
    for (const id of ['a b', 'x'.repeat(65), '../..', '{"a":1}']) {
      const a = await s.call('GET', '/v1/blobs/zz', { headers: { 'x-request-id': id } });
      expect(a.headers['x-request-id']).not.toBe(id);
      expect(a.json.instance).toBe(a.headers['x-request-id']);
    }
  });

  it('lists keys as NDJSON and in sorted pages', async () => {
    const lake = freshPath(base);
    const t = await serve(base, new HashKeyStorage(lake));
    try {
      const keys: string[] = [];
      for (let i = 0; i < 25; i++)
        keys.push((await t.call('PUT', '/v1/blobs', { body: `value ${i}` })).json.key);
      keys.sort();
      const all = await t.call('GET', '/v1/keys');
      expect(all.headers['content-type']).toMatch(/^application\/x-ndjson/);
      const lines = all.text.trimEnd().split('\n');
      expect(lines.map((l) => JSON.parse(l).key).sort()).toEqual(keys);
      const pages: string[][] = [];
      let after: string | null = null;
      do {
        const page: { json: { keys: string[]; next: string | null } } = await t.call(
          'GET',
          `/v1/keys?limit=10${after ? `&after=${after}` : ''}`,
        );
        pages.push(page.json.keys);
        after = page.json.next;
      } while (after);
      expect(pages.map((p) => p.length)).toEqual([10, 10, 5]);
      expect(pages.flat()).toEqual(keys);
      // Exactly a page left: no next page.
      const last = await t.call('GET', `/v1/keys?limit=5&after=${keys[19]}`);
      expect(last.json).toEqual({ keys: keys.slice(20), next: null });
      const fetched = await t.call('POST', '/v1/fetch', { json: { keys: [keys[0], 'ef'.repeat(32)] } });
      expect(fetched.json).toEqual({
        results: [
          { key: keys[0], present: true },
          { key: 'ef'.repeat(32), present: false },
        ],
      });
      const described = await t.call('GET', '/v1/describe');
      expect(described.json).toMatchObject({
        algorithm: 'sha256',
        reachable: true,
        location: { kind: 'disk' },
      });
    } finally {
      await t.close();
    }
  });
});

describe('bounded uploads', () => {
  let root: string;
  let s: Served;
  const limit = 1 << 20;
  beforeAll(async () => {
    root = freshPath(base);
    s = await serve(base, new HashKeyStorage(root), { settings: { bodyLimit: limit, maxUploads: 1 } });
  });
  afterAll(() => s.close());

  it('refuses a body over the limit: by its Content-Length before reading it, or as it streams', async () => {
    const big = pseudoRandom('too big', limit + 1);
    // Refused on its header alone: the client need not send a byte of it.
    const declared = await raw(
      s.socket,
      `PUT /v1/blobs HTTP/1.1\r\nHost: x\r\nContent-Length: ${limit + 1}\r\n\r\n`,
    );
    expect(declared).toMatch(/^HTTP\/1.1 413 /);
    expect(declared).toContain('"code":"TARN_TOO_LARGE"');
    expect(declared.toLowerCase()).toContain('connection: close');
    // Cut as it streams: the answer comes while the client is still sending, and the connection
    // closes (a client may see its write fail before it reads the answer).
    const streamed = await rawChunked(s.socket, '/v1/blobs', slowly(big, 8, 5));
    expect(streamed).toMatch(/^HTTP\/1.1 413 /);
    expect(streamed).toContain('"code":"TARN_TOO_LARGE"');
    expect(lakeObjects(root)).toEqual([]);
    const exactly = await s.call('PUT', '/v1/blobs', { body: big.subarray(0, limit) });
    expect(exactly.status).toBe(201);
  });

  it('answers 503 TARN_BUSY with Retry-After when every upload slot is taken', async () => {
    const data = pseudoRandom('slow', 200_000);
    let release: () => void = () => undefined;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    async function* held(): AsyncGenerator<Buffer> {
      yield data.subarray(0, 1000);
      await gate;
      yield data.subarray(1000);
    }
    const slow = s.call('PUT', '/v1/blobs', { body: held() });
    // Wait until the upload holds its slot: its temp file is in the lake (a loaded machine can
    // take well over 200 ms to get there).
    for (let i = 0; i < 400 && temps(root).length === 0; i++) await sleep(25);
    const busy = await s.call('PUT', '/v1/blobs', { body: 'another' });
    expect([busy.status, busy.json.code, busy.headers['retry-after']]).toEqual([503, 'TARN_BUSY', '1']);
    release();
    expect((await slow).json).toEqual({ key: sha256(data), size: data.length, status: 'stored' });
    expect((await s.call('PUT', '/v1/blobs', { body: 'another' })).status).toBe(201);
  });

  it('forbids deletes unless the config allows them', async () => {
    const { key } = (await s.call('PUT', '/v1/blobs', { body: 'kept' })).json;
    const a = await s.call('DELETE', `/v1/blobs/${key}`);
    expect([a.status, a.json.code]).toEqual([403, 'TARN_FORBIDDEN']);
    expect(blobs(root)).toContain(key);
  });
});

describe('health', () => {
  it('answers /healthz, /readyz (503 when not ready) and /v1/openapi.json', async () => {
    let ready = true;
    const s = await serve(base, new HashKeyStorage(freshPath(base)), {
      readiness: () => ({ ready, generation: 2, loadedAt: null, lastReload: { ok: ready, at: 'now' } }),
    });
    try {
      expect((await s.call('GET', '/healthz')).json).toEqual({ status: 'ok' });
      expect((await s.call('GET', '/readyz')).status).toBe(200);
      ready = false;
      const r = await s.call('GET', '/readyz');
      expect([r.status, r.json.ready]).toEqual([503, false]);
      const doc = await s.call('GET', '/v1/openapi.json');
      expect(doc.json.openapi).toBe('3.1.0');
    } finally {
      await s.close();
    }
  });

  it('answers 503 TARN_UNAVAILABLE when there is no storage', async () => {
    const s = await serve(base, new HashKeyStorage(freshPath(base)));
    try {
      await s.trees.close();
      const a = await call(s.socket, 'GET', `/v1/blobs/${'a'.repeat(64)}`);
      expect([a.status, a.json.code]).toEqual([503, 'TARN_UNAVAILABLE']);
      expect((await s.call('GET', '/healthz')).status).toBe(200);
    } finally {
      await s.close();
    }
  });
});
