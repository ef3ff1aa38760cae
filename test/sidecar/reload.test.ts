import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import type { ClientRequest } from 'node:http';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { pseudoRandom } from '../helpers/data.js';
import { freshPath, tempDir } from '../helpers/tmp.js';
import { until } from '../helpers/wait.js';
import { type Answer, call, logLines, type Sidecar, sample, startSidecar } from './serve-process.js';

const base = tempDir('tarn-reload-');
const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

/**
 * A folder laid out as the kubelet lays out a ConfigMap volume: the files in a timestamped folder,
 * `..data` a link to it, and each file a link through `..data`. An update writes a new timestamped
 * folder, points a new link at it and renames that link over `..data` (one atomic swap), then
 * removes the old folder.
 */
class ConfigMapVolume {
  readonly dir: string;
  #n = 0;
  #current: string | undefined;

  constructor(dir: string, text: string) {
    this.dir = dir;
    mkdirSync(dir, { recursive: true });
    this.update(text);
    symlinkSync('..data/tarn.yaml', join(dir, 'tarn.yaml'));
  }

  get file(): string {
    return join(this.dir, 'tarn.yaml');
  }

  update(text: string): void {
    this.#n++;
    const stamp = `..2026_11_29_15_00_${String(this.#n).padStart(2, '0')}.${String(100000000 + this.#n)}`;
    mkdirSync(join(this.dir, stamp));
    writeFileSync(join(this.dir, stamp, 'tarn.yaml'), text);
    symlinkSync(stamp, join(this.dir, '..data_tmp'));
    renameSync(join(this.dir, '..data_tmp'), join(this.dir, '..data'));
    if (this.#current) rmSync(join(this.dir, this.#current), { recursive: true });
    this.#current = stamp;
  }
}

async function readyz(s: Sidecar) {
  const a = await call(s.socket, 'GET', '/readyz');
  return { status: a.status, body: JSON.parse(a.text) };
}

async function untilGeneration(s: Sidecar, generation: number): Promise<void> {
  let last = 0;
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    last = (await readyz(s)).body.generation;
    if (last === generation) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`generation stayed ${last}, expected ${generation}`);
}

const put = (s: Sidecar, value: string) =>
  call(s.socket, 'PUT', '/v1/blobs', value, { 'content-type': 'application/octet-stream' });

describe('config reload', () => {
  it('follows a ConfigMap update (..data swapped): the new tree serves; an invalid one keeps the old tree and makes /readyz 503 until a valid one', async () => {
    const dir = freshPath(base, 'cm');
    const lakes = ['a', 'b', 'c'].map((n) => join(dir, `lake-${n}`));
    const configOf = (lake: string) => `location: ${lake}\n`;
    const volume = new ConfigMapVolume(join(dir, 'config'), configOf(lakes[0] as string));
    const s = await startSidecar([
      '--config',
      volume.file,
      '--metrics-port',
      '0',
      '--metrics-host',
      '127.0.0.1',
    ]);
    try {
      expect(s.banner).toContain('reloaded when it changes');
      expect(await readyz(s)).toMatchObject({
        status: 200,
        body: { ready: true, generation: 1, lastReload: null },
      });
      expect((await put(s, 'one')).status).toBe(201);
      expect(existsSync(join(lakes[0] as string, sha256('one').slice(0, 2)))).toBe(true);

      // The kubelet's swap: generation 2, the writes go to lake b.
      volume.update(configOf(lakes[1] as string));
      await untilGeneration(s, 2);
      expect(await readyz(s)).toMatchObject({ status: 200, body: { ready: true, lastReload: { ok: true } } });
      expect((await put(s, 'two')).status).toBe(201);
      expect(existsSync(join(lakes[1] as string, sha256('two').slice(0, 2)))).toBe(true);
      expect((await call(s.socket, 'GET', `/v1/blobs/${sha256('one')}`)).status).toBe(404);

      // An invalid config: the old tree stays (writes still go to b), /readyz is 503 with the reason.
      volume.update('location: { kind: nonsense }\n');
      let r = await readyz(s);
      for (let i = 0; i < 500 && r.status === 200; i++) {
        await new Promise((res) => setTimeout(res, 20));
        r = await readyz(s);
      }
      expect(r.status).toBe(503);
      expect(r.body).toMatchObject({ ready: false, generation: 2, lastReload: { ok: false } });
      expect(r.body.lastReload.error).toMatch(/location/);
      expect((await put(s, 'three')).status).toBe(201);
      expect(existsSync(join(lakes[1] as string, sha256('three').slice(0, 2)))).toBe(true);
      const metrics = (await call(undefined, 'GET', s.metricsUrl as string)).text;
      expect(sample(metrics, 'tarn_sidecar_config_reload_failures_total')).toBe(1);
      expect(sample(metrics, 'tarn_sidecar_ready')).toBe(0);
      expect(sample(metrics, 'tarn_sidecar_config_generation')).toBe(2);

      // A valid one again: ready, generation 3, lake c.
      volume.update(configOf(lakes[2] as string));
      await untilGeneration(s, 3);
      expect(await readyz(s)).toMatchObject({ status: 200, body: { ready: true, lastReload: { ok: true } } });
      expect((await put(s, 'four')).status).toBe(201);
      expect(existsSync(join(lakes[2] as string, sha256('four').slice(0, 2)))).toBe(true);

      // SIGHUP rebuilds even with the same text (a secret file it names may have changed).
      s.child.kill('SIGHUP');
      await untilGeneration(s, 4);
    } finally {
      const r = await s.stop();
      expect(r.code).toBe(0);
      const failures = logLines(r.stdout).filter((l) => l.event === 'reload' && l.level === 50);
      expect(failures).toHaveLength(1);
      expect(String(failures[0]?.msg)).toMatch(/^config tarn\.yaml not reloaded, generation 2 kept: /);
      expect(JSON.stringify(failures[0])).not.toMatch(/\n\s+at /);
    }
  });

  it('a request in flight during a reload finishes on the tree it started with', async () => {
    const dir = freshPath(base, 'inflight');
    const [a, b] = [join(dir, 'lake-a'), join(dir, 'lake-b')];
    const volume = new ConfigMapVolume(join(dir, 'config'), `location: ${a}\n`);
    const s = await startSidecar(['--config', volume.file]);
    try {
      const value = pseudoRandom('in flight', 2 << 20);
      let request: ClientRequest | undefined;
      const answer: Promise<Answer> = call(s.socket, 'PUT', '/v1/blobs', (req) => {
        request = req;
        req.setHeader('content-type', 'application/octet-stream');
        req.setHeader('content-length', value.length);
        req.write(value.subarray(0, 1 << 20));
      });
      await until(() => readdirSync(join(a, '.tmp')).length > 0, 'the upload reaches a temp file');
      volume.update(`location: ${b}\n`);
      await untilGeneration(s, 2);
      request?.end(value.subarray(1 << 20));
      expect((await answer).status).toBe(201);
      const key = sha256(value);
      expect(existsSync(join(a, key.slice(0, 2)))).toBe(true);
      expect(existsSync(join(b, key.slice(0, 2)))).toBe(false);
    } finally {
      expect((await s.stop()).code).toBe(0);
    }
  });
});
