import { chmodSync, lstatSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { inCI } from '../bed/binaries.js';
import { run } from '../helpers/spawn.js';
import { freshPath, tempDir } from '../helpers/tmp.js';
import { call, startSidecar } from './serve-process.js';

// Who may connect is the kernel's call on the socket file's mode and group: only root can try it as
// another user (setpriv), so CI, which runs as root, must; elsewhere it is skipped.
const asRoot = process.getuid?.() === 0;
if (!asRoot && inCI()) throw new Error('the socket permission tests need root (to connect as nobody)');

const base = tempDir('tarn-serve-socket-');
chmodSync(base, 0o755); // mkdtemp makes it private; nobody must reach the socket's folder

/** Connects to the socket as `nobody`, in the given supplementary groups; says `connected` or the errno. */
async function connectAsNobody(socket: string, groups: number[]): Promise<string> {
  const script = `const s = require('node:net').connect(process.argv[1]);
s.on('connect', () => { console.log('connected'); s.destroy(); });
s.on('error', (e) => console.log(e.code));`;
  const who = [
    '--reuid=65534',
    '--regid=65534',
    groups.length > 0 ? `--groups=${groups.join(',')}` : '--clear-groups',
  ];
  const r = await run('setpriv', [...who, process.execPath, '-e', script, socket]);
  expect(r.stderr).toBe('');
  return r.stdout.trim();
}

function configIn(dir: string, serve: Record<string, unknown>): string {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'tarn.yaml');
  writeFileSync(file, JSON.stringify({ location: './lake', serve }));
  return file;
}

describe.skipIf(!asRoot)('the socket: mode 0660 and the configured group', () => {
  it('a process in the socket group connects; one outside it cannot', async () => {
    const dir = freshPath(base, 'grp');
    const file = configIn(dir, { socket: './run/tarn.sock', socketGroup: 4242 });
    const s = await startSidecar(['--config', file]);
    try {
      expect(s.socket).toBe(join(dir, 'run', 'tarn.sock'));
      const st = lstatSync(s.socket);
      expect(st.mode & 0o7777).toBe(0o660);
      expect(st.gid).toBe(4242);
      expect(s.banner).toContain('(mode 0660, group 4242)');
      expect(await connectAsNobody(s.socket, [4242])).toBe('connected');
      expect(await connectAsNobody(s.socket, [])).toBe('EACCES');
      expect(await connectAsNobody(s.socket, [4243])).toBe('EACCES');
      expect((await call(s.socket, 'GET', '/healthz')).status).toBe(200); // its owner, root
    } finally {
      expect((await s.stop()).code).toBe(0);
    }
  });

  it('a group by name (/etc/group), and the mode from the config', async () => {
    const dir = freshPath(base, 'named');
    // dialout is gid 20 on Debian and Ubuntu; read it from the file rather than assume it.
    const file = configIn(dir, { socket: './tarn.sock', socketGroup: 'dialout', socketMode: '0600' });
    const s = await startSidecar(['--config', file]);
    try {
      const st = lstatSync(s.socket);
      expect(st.mode & 0o7777).toBe(0o600);
      const gid = st.gid;
      expect(gid).not.toBe(0);
      // 0600: even the group may not connect.
      expect(await connectAsNobody(s.socket, [gid])).toBe('EACCES');
    } finally {
      expect((await s.stop()).code).toBe(0);
    }
  });

  it('an unknown group name is a config error, and nothing is left bound', async () => {
    const dir = freshPath(base, 'nogroup');
    const file = configIn(dir, { socket: './tarn.sock', socketGroup: 'no-such-group-here' });
    const r = await run(process.execPath, [
      join(import.meta.dirname, '../../src-lib/bin/tarn.js'),
      'serve',
      '--config',
      file,
    ]);
    expect(r.code).toBe(6);
    expect(r.stderr).toContain('no group is named "no-such-group-here"');
    expect(() => lstatSync(join(dir, 'tarn.sock'))).toThrow(/ENOENT/);
  });
});
