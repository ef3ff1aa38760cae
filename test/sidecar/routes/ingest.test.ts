import { mkdirSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { HashKeyStorage, SidecarLocation } from '@tarnjs/tarn';
import type { FastifyPluginAsync } from 'fastify';
import { afterAll, describe, expect, it } from 'vitest';
import { pseudoRandom, sha256 } from '../../helpers/data.js';
import { fifoIn, freshPath, tempDir } from '../../helpers/tmp.js';
import { type Served, serve } from './server.js';

const base = tempDir();
const open: Served[] = [];
afterAll(async () => {
  for (const s of open) await s.close();
});

/** A sidecar over a fresh lake that ingests from `roots`, and the URLs of what it was asked. */
async function sidecar(roots: string[]): Promise<{ s: Served; lake: string; asked: string[] }> {
  const lake = freshPath(base, 'lake');
  const asked: string[] = [];
  const instrument: FastifyPluginAsync = async (app) => {
    app.addHook('onRequest', async (request) => {
      asked.push(`${request.method} ${request.url}`);
    });
  };
  const s = await serve(base, new HashKeyStorage(lake), { settings: { ingestRoots: roots }, instrument });
  open.push(s);
  return { s, lake, asked };
}

/** A fresh shared folder holding one file. */
function sharedFile(name: string, bytes: Buffer): { root: string; file: string } {
  const root = freshPath(base, 'shared');
  mkdirSync(root);
  const file = join(root, name);
  writeFileSync(file, bytes);
  return { root, file };
}

const ingest = (s: Served, body: unknown) => s.call('POST', '/v1/blobs/ingest', { json: body });

describe('POST /v1/blobs/ingest', () => {
  it('stores a file of an allowed folder by reading it, then finds it stored', async () => {
    const v = pseudoRandom('ingest-1', 3 << 20);
    const { root, file } = sharedFile('big.bin', v);
    const { s } = await sidecar([root]);
    const first = await ingest(s, { path: file, algorithm: 'sha256' });
    expect(first.status).toBe(201);
    expect(first.json).toEqual({ key: sha256(v), size: v.byteLength, status: 'stored' });
    const again = await ingest(s, { path: file, expect: sha256(v) });
    expect(again.json).toEqual({ key: sha256(v), size: v.byteLength, status: 'existed' });
    const got = await s.call('GET', `/v1/blobs/${sha256(v)}`);
    expect(got.body.equals(v)).toBe(true);
  });

  it('is off without an allowed folder: 403, marked off for clients', async () => {
    const { file } = sharedFile('a.bin', pseudoRandom('ingest-2', 100));
    const { s } = await sidecar([]);
    const r = await ingest(s, { path: file });
    expect(r.status).toBe(403);
    expect(r.json.code).toBe('TARN_FORBIDDEN');
    expect(r.headers['x-tarn-ingest']).toBe('off');
  });

  it('refuses whatever is not a regular file inside an allowed folder, and stores nothing', async () => {
    const { root } = sharedFile('ok.bin', pseudoRandom('ingest-3', 10));
    const outside = sharedFile('secret.bin', pseudoRandom('ingest-3-secret', 1000));
    symlinkSync(outside.file, join(root, 'link-to-file'));
    symlinkSync(join(outside.file, '..'), join(root, 'link-to-folder'));
    mkdirSync(join(root, 'folder'));
    const fifo = fifoIn(base);
    symlinkSync(fifo, join(root, 'link-to-fifo'));
    const { s, lake } = await sidecar([root]);
    const cases: [string, RegExp][] = [
      ['/etc/passwd', /not in a folder this sidecar ingests from/],
      [`${root}/../${outside.file.split('/').slice(-2).join('/')}`, /not in a folder/],
      [join(root, 'link-to-file'), /symbolic link/],
      [join(root, 'link-to-folder', 'secret.bin'), /leads outside/],
      [join(root, 'link-to-fifo'), /symbolic link/],
      [join(root, 'folder'), /not a regular file/],
      [join(root, 'missing.bin'), /no such file here/],
      [root, /not in a folder/],
    ];
    for (const [path, why] of cases) {
      const r = await ingest(s, { path });
      expect(r.status, path).toBe(403);
      expect(r.json.code).toBe('TARN_FORBIDDEN');
      expect(r.json.detail).toMatch(why);
      expect(r.headers['x-tarn-ingest']).toBeUndefined();
    }
    // A FIFO inside the folder is opened without waiting for a writer, and refused.
    const inner = freshPath(root, 'fifo');
    const { execFileSync } = await import('node:child_process');
    execFileSync('mkfifo', [inner]);
    const r = await ingest(s, { path: inner });
    expect(r.status).toBe(403);
    expect(r.json.detail).toMatch(/not a regular file/);
    expect(readdirSync(lake).filter((n) => /^[0-9a-f]{2}$/.test(n))).toEqual([]);
  });

  it('checks the expected key and the digest; bad requests are 400 naming the field', async () => {
    const v = pseudoRandom('ingest-5', 5000);
    const { root, file } = sharedFile('v.bin', v);
    const { s, lake } = await sidecar([root]);
    const wrong = await ingest(s, { path: file, expect: 'ab'.repeat(32) });
    expect(wrong.status).toBe(422);
    expect(wrong.json.code).toBe('TARN_KEY_MISMATCH');
    const digest = await ingest(s, { path: file, algorithm: 'blake2b512' });
    expect(digest.status).toBe(400);
    expect(digest.json.detail).toMatch(/keys values by sha256/);
    for (const body of [{ path: 'relative/v.bin' }, { path: file, extra: 1 }, {}, { path: `${file}\0x` }]) {
      const r = await ingest(s, body);
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(r.json.code).toBe('TARN_BAD_REQUEST');
    }
    expect(readdirSync(lake).filter((n) => /^[0-9a-f]{2}$/.test(n))).toEqual([]);
  });
});

describe('SidecarLocation write(path) over ingest', () => {
  it('asks the sidecar to ingest a large file of a shared folder, and streams a small one', async () => {
    const big = pseudoRandom('ingest-6', 2 << 20);
    const { root, file } = sharedFile('big.bin', big);
    const small = join(root, 'small.bin');
    writeFileSync(small, pseudoRandom('ingest-6-small', 1000));
    const { s, asked } = await sidecar([root]);
    const client = new HashKeyStorage(new SidecarLocation(s.socket));
    try {
      const put = await client.put(file);
      expect(put).toEqual({ key: sha256(big), size: big.byteLength, status: 'stored' });
      expect(asked).toEqual(['POST /v1/blobs/ingest']);
      await client.write(small);
      expect(asked.at(-1)).toBe('PUT /v1/blobs');
      await expect(client.read(sha256(big), (v) => v.bytes())).resolves.toEqual(big);
    } finally {
      await client.close();
    }
  });

  it('streams what the sidecar refuses, and stops asking a sidecar that ingests nothing', async () => {
    const v = pseudoRandom('ingest-7', 2 << 20);
    const { root, file } = sharedFile('v.bin', v);
    const other = sharedFile('w.bin', pseudoRandom('ingest-7-w', 2 << 20));
    // Allowed folder: `root`; the file of `other` is outside it: refused, then streamed.
    const { s, asked } = await sidecar([root]);
    const client = new HashKeyStorage(new SidecarLocation(s.socket));
    try {
      await client.write(other.file);
      expect(asked).toEqual(['POST /v1/blobs/ingest', 'PUT /v1/blobs']);
      expect(await client.write(file)).toBe(sha256(v));
      expect(asked.at(-1)).toBe('POST /v1/blobs/ingest');
    } finally {
      await client.close();
    }
    const off = await sidecar([]);
    const offClient = new HashKeyStorage(new SidecarLocation(off.s.socket));
    try {
      expect(await offClient.write(file)).toBe(sha256(v));
      expect(await offClient.write(other.file)).toBe(sha256(pseudoRandom('ingest-7-w', 2 << 20)));
      expect(off.asked).toEqual(['POST /v1/blobs/ingest', 'PUT /v1/blobs', 'PUT /v1/blobs']);
    } finally {
      await offClient.close();
    }
  });

  it('passes the expected key: a mismatch stores nothing and throws KeyMismatchError', async () => {
    const v = pseudoRandom('ingest-8', 2 << 20);
    const { root, file } = sharedFile('v.bin', v);
    const { s } = await sidecar([root]);
    const client = new HashKeyStorage(new SidecarLocation(s.socket));
    try {
      await expect(client.write(file, { expectedKey: 'cd'.repeat(32) })).rejects.toMatchObject({
        code: 'TARN_KEY_MISMATCH',
      });
      expect(await client.location.contains(sha256(v))).toBe(false);
    } finally {
      await client.close();
    }
  });
});
