// The sidecar image (sidecar/Dockerfile), built here by scripts/image.sh with buildah, unpacked by
// umoci and run by runc as a pod with a restrictive securityContext runs it: uid 65532, read-only
// root filesystem, every capability dropped, no privilege escalation, no network. The test process
// talks to it over the Unix socket in a mounted host folder, and checks the restrictions on the
// running process itself, from the host (/proc), not from what the configuration asked for.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  buildSidecarImage,
  IMAGE_UID,
  imageAvailable,
  type RunningImage,
  runSidecarImage,
  type SidecarImage,
  unpackSidecarImage,
} from '../bed/image.js';
import { tempDir } from '../helpers/tmp.js';
import { until } from '../helpers/wait.js';
import { call } from './routes/server.js';

const MB = 1e6;

describe.runIf(imageAvailable())('the sidecar image', () => {
  let image: SidecarImage;
  let warm: SidecarImage;
  let running: RunningImage;
  let rootfsBytes: number;
  let lake: string;

  beforeAll(async () => {
    image = await buildSidecarImage();
    // A second run with the same inputs builds nothing.
    warm = await buildSidecarImage();
    const dir = tempDir('tarn-image-');
    const bundle = unpackSidecarImage(image, join(dir, 'bundle'));
    rootfsBytes = bundle.rootfsBytes;
    lake = join(dir, 'lake');
    running = await runSidecarImage(bundle, {
      socketDir: join(dir, 'sock'),
      lakeDir: lake,
      stateDir: join(dir, 'state'),
    });
    console.log(
      `sidecar image ${image.image}: archive ${(image.archiveBytes / MB).toFixed(1)} MB, ` +
        `unpacked ${(rootfsBytes / MB).toFixed(1)} MB; build ${(image.ms / 1000).toFixed(1)} s ` +
        `(${image.built ? 'built' : 'cached'}), warm run ${(warm.ms / 1000).toFixed(2)} s`,
    );
  }, 900_000);

  afterAll(async () => {
    await running?.stop();
  }, 60_000);

  it('a warm build reuses the cached image and archive', () => {
    expect(warm.built).toBe(false);
    expect(warm.image).toBe(image.image);
    expect(warm.archive).toBe(image.archive);
    expect(warm.ms).toBeLessThan(10_000);
    expect(statSync(image.archive).size).toBe(image.archiveBytes);
  });

  it('is small', () => {
    // Node alone is ~99 MB unpacked (~30 MB compressed); the app adds ~30 MB unpacked.
    expect(image.archiveBytes).toBeLessThan(64 * MB);
    expect(rootfsBytes).toBeLessThan(160 * MB);
  });

  it('answers /healthz and /readyz over the socket', async () => {
    expect((await call(running.socket, 'GET', '/healthz')).status).toBe(200);
    const ready = await call(running.socket, 'GET', '/readyz');
    expect(ready.status).toBe(200);
  });

  it('stores and serves a value; the blob lands in the mounted lake, owned by its uid', async () => {
    const body = Buffer.from(`a value through the image ${Date.now()}`);
    const put = await call(running.socket, 'PUT', '/v1/blobs', { body });
    expect(put.status).toBe(201);
    expect(put.json).toMatchObject({ size: body.length, status: 'stored' });
    const key = put.json.key as string;
    const get = await call(running.socket, 'GET', `/v1/blobs/${key}`);
    expect(get.status).toBe(200);
    expect(get.body.equals(body)).toBe(true);
    expect(get.headers.etag).toContain(key);
    const again = await call(running.socket, 'PUT', '/v1/blobs', { body });
    expect(again.json).toMatchObject({ key, status: 'existed' });
    const blob = join(lake, key.slice(0, 2), key.slice(2));
    expect(readFileSync(blob).equals(body)).toBe(true);
    expect(statSync(blob).uid).toBe(IMAGE_UID);
  });

  it('runs as uid 65532 with no capability and no privilege escalation', () => {
    const status = readFileSync(`/proc/${running.hostPid()}/status`, 'utf8');
    const field = (name: string) => status.match(new RegExp(`^${name}:\\s*(.*)$`, 'm'))?.[1]?.split(/\s+/);
    expect(field('Uid')).toEqual(Array(4).fill(String(IMAGE_UID)));
    expect(field('Gid')).toEqual(Array(4).fill(String(IMAGE_UID)));
    for (const set of ['CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb'])
      expect(field(set), set).toEqual(['0000000000000000']);
    expect(field('NoNewPrivs')).toEqual(['1']);
  });

  it('has a read-only root filesystem, and needs no writable place but its volumes', () => {
    const mounts = readFileSync(`/proc/${running.hostPid()}/mountinfo`, 'utf8').split('\n');
    const root = mounts.find((line) => line.split(' ')[4] === '/');
    expect(root?.split(' ')[5]?.split(',')).toContain('ro');
    // Inside, as the server's user: the root and /tmp refuse writes.
    const probe = running.exec([
      'node',
      '-e',
      `for (const p of ['/app/x', '/tmp/x', '/x']) {
         try { require('node:fs').writeFileSync(p, ''); console.log(p, 'written'); }
         catch (e) { console.log(p, e.code); }
       }`,
    ]);
    expect(probe.status, probe.stderr).toBe(0);
    expect(probe.stdout.trim().split('\n')).toEqual(['/app/x EROFS', '/tmp/x EROFS', '/x EROFS']);
  });

  it('has no network: a namespace of its own with nothing but loopback', () => {
    const dev = readFileSync(`/proc/${running.hostPid()}/net/dev`, 'utf8');
    const interfaces = dev
      .split('\n')
      .slice(2)
      .map((line) => line.split(':')[0]?.trim())
      .filter(Boolean);
    expect(interfaces).toEqual(['lo']);
    // Inside: the loopback's own addresses and nothing else (runc brings lo up, as a CNI plugin does).
    const probe = running.exec([
      'node',
      '-p',
      'JSON.stringify(Object.values(require("node:os").networkInterfaces()).flat().map((a) => a.address))',
    ]);
    expect(probe.status, probe.stderr).toBe(0);
    expect(JSON.parse(probe.stdout).sort()).toEqual(['127.0.0.1', '::1']);
  });

  it('stops on SIGTERM: the socket unlinked, no temp file left in the lake', async () => {
    await running.stop();
    await until(() => !existsSync(running.socket), 'the socket is unlinked');
    const log = readFileSync(running.log, 'utf8');
    expect(log).toMatch(/"event":"stopped"/);
    expect(readdirSync(join(lake, '.tmp'))).toEqual([]);
  });
});
