import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  cpSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { redactUrl } from '@tarnjs/sidecar';
import { describe, expect, it } from 'vitest';
import { collect, REPO, run, tarn } from '../helpers/spawn.js';
import { freshPath, tempDir } from '../helpers/tmp.js';
import { until } from '../helpers/wait.js';
import { call, logLines, startSidecar } from './serve-process.js';

const base = tempDir('tarn-serve-');
const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');
const noStack = /\n\s+at /;

describe('tarn serve', () => {
  it('with no flags serves ./.tarn on ./.tarn/tarn.sock, prints a curl line, logs JSON, and stops on SIGTERM', async () => {
    const cwd = freshPath(base, 'cwd');
    mkdirSync(cwd);
    const s = await startSidecar([], { cwd, env: { TARN_STORAGE: '' } });
    const socket = join(cwd, '.tarn', 'tarn.sock');
    expect(s.socket).toBe(socket);
    expect(s.banner).toContain(`listening on ${socket}`);
    expect(s.banner).toContain(`try: curl --unix-socket ${socket} http://tarn/v1/`);
    expect(lstatSync(socket).isSocket()).toBe(true);
    expect(lstatSync(socket).mode & 0o777).toBe(0o660);
    expect(existsSync(join(cwd, '.tarn', 'config.yml'))).toBe(true); // the lake was created

    const health = await call(socket, 'GET', '/healthz');
    expect([health.status, JSON.parse(health.text)]).toEqual([200, { status: 'ok' }]);
    const value = 'a value through the socket';
    const put = await call(socket, 'PUT', '/v1/blobs', value, { 'content-type': 'application/octet-stream' });
    expect(put.status).toBe(201);
    expect(JSON.parse(put.text)).toEqual({ key: sha256(value), size: value.length, status: 'stored' });
    const get = await call(socket, 'GET', `/v1/blobs/${sha256(value)}`);
    expect([get.status, get.text]).toEqual([200, value]);

    const r = await s.stop();
    expect(r.code).toBe(0);
    expect(existsSync(socket)).toBe(false);
    const lines = logLines(r.stdout); // every line of stdout is JSON
    expect(lines.some((l) => l.event === 'listening')).toBe(true);
    expect(lines.some((l) => l.event === 'stopped')).toBe(true);
    // The value is still in the lake, for the CLI.
    const cat = await tarn(['--storage', join(cwd, '.tarn'), 'cat', sha256(value)]);
    expect(cat.stdout).toBe(value);
  });

  it('serves $TARN_STORAGE (a lake created when missing) on a socket in it; --socket overrides', async () => {
    const lake = freshPath(base);
    const s = await startSidecar([], { env: { TARN_STORAGE: lake } });
    expect(s.socket).toBe(join(lake, 'tarn.sock'));
    expect((await call(s.socket, 'GET', '/healthz')).status).toBe(200);
    expect((await s.stop()).code).toBe(0);

    const dir = freshPath(base, 'sockets');
    const socket = join(dir, 'deep', 'x.sock'); // its folders are created
    const t = await startSidecar(['--storage', lake, '--socket', socket]);
    expect(t.socket).toBe(socket);
    expect((await call(socket, 'GET', '/healthz')).status).toBe(200);
    expect((await t.stop()).code).toBe(0);
    expect(existsSync(socket)).toBe(false);
  });

  it('--ingest-root (repeatable, relative to the working folder) and serve.ingestRoots (relative to the config) allow folders', async () => {
    const cwd = freshPath(base, 'cwd');
    mkdirSync(join(cwd, 'a'), { recursive: true });
    mkdirSync(join(cwd, 'b'));
    writeFileSync(join(cwd, 'a', 'x'), 'in a');
    writeFileSync(join(cwd, 'b', 'y'), 'in b');
    const json = { 'content-type': 'application/json' };
    const ingest = (socket: string, path: string) =>
      call(socket, 'POST', '/v1/blobs/ingest', JSON.stringify({ path }), json);
    const s = await startSidecar(
      ['--storage', join(cwd, 'lake'), '--ingest-root', 'a', '--ingest-root', 'b'],
      {
        cwd,
      },
    );
    for (const [file, text] of [
      ['a/x', 'in a'],
      ['b/y', 'in b'],
    ] as const) {
      const r = await ingest(s.socket, join(cwd, file));
      expect([r.status, JSON.parse(r.text).key]).toEqual([201, sha256(text)]);
    }
    expect((await s.stop()).code).toBe(0);

    const config = join(cwd, 'tarn.yaml');
    writeFileSync(config, 'location: lake2\nserve:\n  socket: s.sock\n  ingestRoots: [b]\n');
    const t = await startSidecar(['--config', config], { cwd: base });
    expect((await ingest(t.socket, join(cwd, 'b', 'y'))).status).toBe(201);
    expect((await ingest(t.socket, join(cwd, 'a', 'x'))).status).toBe(403);
    expect((await t.stop()).code).toBe(0);
  });

  it('replaces a stale socket (its server was killed) and refuses one a live server answers on', async () => {
    const lake = freshPath(base);
    const first = await startSidecar(['--storage', lake]);
    first.child.kill('SIGKILL');
    await first.exited;
    expect(lstatSync(first.socket).isSocket()).toBe(true); // left behind

    const second = await startSidecar(['--storage', lake]);
    expect(second.socket).toBe(first.socket);
    expect((await call(second.socket, 'GET', '/healthz')).status).toBe(200);

    // A third on the same socket: refused, and the second is unharmed.
    const third = await tarn(['serve', '--storage', lake]);
    expect(third.code).toBe(1);
    expect(third.stderr).toContain(`a server is already listening on ${second.socket}`);
    expect(third.stderr).not.toMatch(noStack);
    expect((await call(second.socket, 'GET', '/healthz')).status).toBe(200);
    const json = await tarn(['--json', 'serve', '--storage', lake]);
    expect(JSON.parse(json.stderr).error.code).toBe('TARN_SOCKET_IN_USE');

    expect((await second.stop()).code).toBe(0);
    expect(existsSync(second.socket)).toBe(false);
  });

  it('refuses a socket path that is a file, a folder or a link, and leaves it as it is', async () => {
    const lake = freshPath(base);
    const dir = freshPath(base, 'paths');
    mkdirSync(dir);
    const file = join(dir, 'file.sock');
    writeFileSync(file, 'not a socket');
    const folder = join(dir, 'folder.sock');
    mkdirSync(folder);
    const link = join(dir, 'link.sock');
    symlinkSync(file, link);
    for (const [path, what] of [
      [file, 'not a socket'],
      [folder, 'a folder'],
      [link, 'a symbolic link'],
    ] as const) {
      const r = await tarn(['serve', '--storage', lake, '--socket', path]);
      expect(r.code).toBe(6);
      expect(r.stderr).toContain(`the socket path ${path} is ${what}; it is left as it is`);
      expect(r.stderr).not.toMatch(noStack);
    }
    expect(readFileSync(file, 'utf8')).toBe('not a socket');
    expect(lstatSync(folder).isDirectory()).toBe(true);
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
  });

  it('refuses bad flags with a usage error', async () => {
    for (const args of [
      ['--metrics-port', 'x'],
      ['--metrics-port', '70000'],
      ['--metrics-host', '127.0.0.1'],
      ['--hot-cache', 'lots'],
      ['--ingest-root', ''],
      ['--config', 'a.yaml', '--storage', 'b'],
      ['extra'],
    ]) {
      const r = await tarn(['serve', '--storage', freshPath(base), ...args]);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).not.toMatch(noStack);
    }
    const missing = await tarn(['serve', '--config', join(base, 'missing.yaml')]);
    expect(missing.code).toBe(6);
  });

  it('logs JSON lines with request ids, and never a body, an authorization header or a secret of a query', async () => {
    const lake = freshPath(base);
    const s = await startSidecar(['--storage', lake], { env: { TARN_LOG_LEVEL: 'trace' } });
    const secrets = ['BODY-SECRET-1', 'BEARER-SECRET-2', 'QUERY-SECRET-3', 'COOKIE-SECRET-4'];
    const headers = {
      'content-type': 'application/octet-stream',
      authorization: `Bearer ${secrets[1]}`,
      cookie: `session=${secrets[3]}`,
      'x-request-id': 'my-request-1',
    };
    await call(s.socket, 'PUT', '/v1/blobs', `a body with ${secrets[0]}`, headers);
    await call(s.socket, 'PUT', `/v1/blobs?token=${secrets[2]}`, `a body with ${secrets[0]}`, headers);
    await call(
      s.socket,
      'GET',
      `/v1/blobs/${'0'.repeat(64)}?X-Amz-Signature=${secrets[2]}`,
      undefined,
      headers,
    );
    const r = await s.stop();
    expect(r.code).toBe(0);
    for (const secret of secrets) expect(r.stdout).not.toContain(secret);
    const lines = logLines(r.stdout);
    const ofRequest = lines.filter((l) => l.reqId !== undefined);
    expect(ofRequest.length).toBeGreaterThan(0);
    expect(ofRequest.some((l) => l.reqId === 'my-request-1')).toBe(true);
    expect(lines.every((l) => typeof l.level === 'number' && typeof l.time === 'string')).toBe(true);
  });

  it('redacts the secrets of a query, and only those', () => {
    expect(redactUrl('/v1/blobs?expect=abc&token=s3cr3t&X-Amz-Signature=x&verify=1')).toBe(
      '/v1/blobs?expect=abc&token=[redacted]&X-Amz-Signature=[redacted]&verify=1',
    );
    expect(redactUrl('/v1/keys?limit=10&after=00')).toBe('/v1/keys?limit=10&after=00');
    expect(redactUrl('/healthz')).toBe('/healthz');
  });

  it('without @tarnjs/sidecar installed, says to install it (exit 1, one line)', async () => {
    // The library alone, as npm installs it: its files, and every dependency but the sidecar.
    const lib = freshPath(base, 'lib-alone');
    mkdirSync(join(lib, 'node_modules'), { recursive: true });
    for (const part of ['package.json', 'bin', 'dist'])
      cpSync(join(REPO, 'src-lib', part), join(lib, part), { recursive: true });
    for (const name of readdirSync(join(REPO, 'node_modules'))) {
      if (name === '@tarnjs' || name === '.bin') continue;
      symlinkSync(join(REPO, 'node_modules', name), join(lib, 'node_modules', name));
    }
    const r = await run(process.execPath, [
      join(lib, 'bin', 'tarn.js'),
      'serve',
      '--storage',
      freshPath(base),
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      'tarn: tarn serve needs the sidecar package, which is not installed: npm install @tarnjs/sidecar (next to @tarnjs/tarn)\n',
    );
    const json = await run(process.execPath, [join(lib, 'bin', 'tarn.js'), '--json', 'serve']);
    expect(JSON.parse(json.stderr).error.code).toBe('TARN_UNSUPPORTED');
  });

  it('tarn-sidecar probe: 0 when the sidecar on the socket is ready, 1 saying why when not, 2 without a socket', async () => {
    const lake = freshPath(base);
    const s = await startSidecar(['--storage', lake]);
    const bin = join(import.meta.dirname, '../../sidecar/bin/tarn-sidecar.js');
    const ok = await run(process.execPath, [bin, 'probe', '--socket', s.socket]);
    expect(ok.code).toBe(0);
    expect((await s.stop()).code).toBe(0);
    const gone = await run(process.execPath, [bin, 'probe', '--socket', s.socket]);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toMatch(/^tarn-sidecar probe: cannot reach .*: connect ENOENT/);
    const none = await run(process.execPath, [bin, 'probe'], { env: { TARN_SIDECAR: '' } });
    expect(none.code).toBe(2);
  });

  it('tarn-sidecar (the image entrypoint) takes the same flags', async () => {
    const lake = freshPath(base);
    const child = spawn(
      process.execPath,
      [join(import.meta.dirname, '../../sidecar/bin/tarn-sidecar.js'), '--storage', lake],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const done = collect(child);
    const socket = join(lake, 'tarn.sock');
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    await until(() => stderr.includes('try: curl'), 'tarn-sidecar listens');
    expect(lstatSync(socket).mode & 0o777).toBe(0o660);
    expect((await call(socket, 'GET', '/healthz')).status).toBe(200);
    child.kill('SIGTERM');
    const r = await done;
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(`try: curl --unix-socket ${socket}`);
    expect(existsSync(socket)).toBe(false);
  });
});
