import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import type { ClientRequest } from 'node:http';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { pseudoRandom } from '../helpers/data.js';
import { freshPath, tempDir } from '../helpers/tmp.js';
import { until } from '../helpers/wait.js';
import { type Answer, call, logLines, startSidecar } from './serve-process.js';

const base = tempDir('tarn-serve-signals-');
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const DRAIN_MS = 2000;

/** A config in a fresh folder: one lake, a short drain. */
function setup() {
  const dir = freshPath(base, 'sig');
  mkdirSync(dir);
  const file = join(dir, 'tarn.yaml');
  writeFileSync(file, `location: ./lake\nserve:\n  drainTimeoutMs: ${DRAIN_MS}\n`);
  return { file, lake: join(dir, 'lake') };
}

/** Every file under the lake but its config and tools: blobs and temp files. */
function filesIn(lake: string): string[] {
  return (readdirSync(lake, { recursive: true, withFileTypes: true }) as import('node:fs').Dirent[])
    .filter((e) => e.isFile() && !e.parentPath.includes('tools') && e.name !== 'config.yml')
    .map((e) => join(e.parentPath, e.name));
}

/** Starts an upload of `value`, sends its first half, and hands over the request to finish (or not). */
async function halfUpload(socket: string, value: Buffer) {
  let request: ClientRequest | undefined;
  const answer: Promise<Answer | Error> = call(socket, 'PUT', '/v1/blobs', (req) => {
    request = req;
    req.setHeader('content-type', 'application/octet-stream');
    req.setHeader('content-length', value.length);
    req.write(value.subarray(0, value.length / 2));
  }).catch((e: Error) => e);
  await until(() => request !== undefined, 'the request starts');
  return { request: request as ClientRequest, answer };
}

describe('tarn serve on SIGTERM', () => {
  it('stops accepting, lets an upload in flight finish within the grace period, then exits 0 and removes the socket', async () => {
    const { file, lake } = setup();
    const s = await startSidecar(['--config', file]);
    const value = pseudoRandom('slow upload', 4 << 20);
    const { request, answer } = await halfUpload(s.socket, value);
    await until(() => filesIn(lake).length > 0, 'the upload reaches a temp file');

    const t0 = Date.now();
    s.child.kill('SIGTERM');
    // Stopped accepting: a new connection fails (the socket is closed, then removed).
    await until(() => !existsSync(s.socket), 'the listening socket is closed');
    await expect(call(s.socket, 'GET', '/healthz')).rejects.toThrow(/ENOENT|ECONNREFUSED/);
    expect(s.child.exitCode).toBeNull(); // still draining

    request.end(value.subarray(value.length / 2));
    const a = (await answer) as Answer;
    expect(a.status).toBe(201);
    expect(JSON.parse(a.text)).toMatchObject({ key: sha256(value), size: value.length, status: 'stored' });
    const r = await s.exited;
    expect(r.code).toBe(0);
    expect(Date.now() - t0).toBeLessThan(DRAIN_MS + 1000);
    expect(existsSync(s.socket)).toBe(false);
    expect(filesIn(lake)).toHaveLength(1); // the blob, no temp file
    const events = logLines(r.stdout).map((l) => l.event);
    expect(events).toContain('stopping');
    expect(events.at(-1)).toBe('stopped');
  });

  it('cuts an upload still running after the grace period: nothing stored, no temp file left, exit 0', async () => {
    const { file, lake } = setup();
    const s = await startSidecar(['--config', file]);
    const value = pseudoRandom('stalled upload', 4 << 20);
    const { answer } = await halfUpload(s.socket, value);
    await until(() => filesIn(lake).length > 0, 'the upload reaches a temp file');

    const t0 = Date.now();
    s.child.kill('SIGTERM');
    const r = await s.exited;
    const took = Date.now() - t0;
    expect(r.code).toBe(0);
    expect(took).toBeGreaterThanOrEqual(DRAIN_MS - 100);
    expect(took).toBeLessThan(DRAIN_MS + 5000);
    const a = await answer;
    expect(a instanceof Error || a.status >= 400).toBe(true); // cut, or refused: never a 201
    expect(filesIn(lake)).toEqual([]);
    expect(existsSync(s.socket)).toBe(false);
    expect(logLines(r.stdout).some((l) => /cut/.test(String(l.msg)))).toBe(true);
  });

  it('a second SIGTERM exits at once, and the socket is removed all the same', async () => {
    const { file, lake } = setup();
    const s = await startSidecar(['--config', file]);
    const { request } = await halfUpload(s.socket, pseudoRandom('second signal', 1 << 20));
    await until(() => filesIn(lake).length > 0, 'the upload reaches a temp file');
    s.child.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 200));
    const t0 = Date.now();
    s.child.kill('SIGTERM');
    const r = await s.exited;
    expect(r.code).toBe(143);
    expect(Date.now() - t0).toBeLessThan(DRAIN_MS);
    expect(existsSync(s.socket)).toBe(false);
    request.destroy();
  });
});
