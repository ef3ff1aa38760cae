import { execFileSync, spawn } from 'node:child_process';
import {
  chmodSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { pseudoRandom, sha256 } from '../../helpers/data.js';
import { collect, run, TARN_BIN, tarn } from '../../helpers/spawn.js';
import { freshPath, tempDir } from '../../helpers/tmp.js';
import { until } from '../../helpers/wait.js';

const base = tempDir();
const STACK = /^\s+at .+/m;

async function lakeWith(data: Buffer | string): Promise<{ lake: string; key: string }> {
  const lake = freshPath(base);
  await tarn(['init', lake]);
  const put = await tarn(['--storage', lake, 'put', '-'], { input: data });
  expect(put.code, put.stderr).toBe(0);
  return { lake, key: sha256(data) };
}

/** A folder of its own, to see that nothing but the expected entries is left in it. */
function folder(): string {
  const dir = freshPath(base, 'out');
  mkdirSync(dir);
  return dir;
}

function mkfifo(dir: string, name = 'fifo'): string {
  const path = join(dir, name);
  execFileSync('mkfifo', [path]);
  return path;
}

/**
 * A character device of our own (1,3 is /dev/null, 1,7 /dev/full), so that a failing test cannot
 * replace the machine's. Without the right to mknod, a user other than root may use the real one:
 * they cannot replace it anyway. Undefined when neither is possible (root without CAP_MKNOD).
 */
function device(dir: string, name: 'null' | 'full'): string | undefined {
  const path = join(dir, name);
  try {
    execFileSync('mknod', [path, 'c', '1', name === 'null' ? '3' : '7'], { stdio: 'ignore' });
    return path;
  } catch {
    return process.getuid?.() === 0 ? undefined : `/dev/${name}`;
  }
}

describe('tarn get -o onto what is not a regular file', () => {
  it('a FIFO is written through, and is still a FIFO', async () => {
    const data = pseudoRandom('to a fifo', (3 << 20) + 11);
    const { lake, key } = await lakeWith(data);
    const dir = folder();
    const fifo = mkfifo(dir);
    const get = tarn(['--storage', lake, 'get', key, '-o', fifo]);
    const reader = run('sh', ['-c', 'cat "$1"', 'sh', fifo]);
    const r = await get;
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect((await reader).stdoutBytes.equals(data)).toBe(true);
    expect(lstatSync(fifo).isFIFO()).toBe(true);
    expect(readdirSync(dir)).toEqual(['fifo']);
  });

  it('a FIFO nobody reads: Ctrl-C exits 130 at once, and the FIFO is still a FIFO', async () => {
    // Over 64 KiB: a smaller value is read whole at lookup (synchronous small reads) and its blob
    // closed at once, and the open blob is how this test sees that tarn waits for a reader.
    const { lake, key } = await lakeWith(pseudoRandom('nobody reads', 200_000));
    const dir = folder();
    const fifo = mkfifo(dir);
    const proc = spawn(process.execPath, [TARN_BIN, '--storage', lake, 'get', key, '-o', fifo], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const done = collect(proc);
    // The value is open (its blob among the process's descriptors) before the target is: then the
    // command is waiting for a reader.
    const blob = join(lake, key.slice(0, 2), key.slice(2));
    const holdsBlob = () => {
      try {
        return readdirSync(`/proc/${proc.pid}/fd`).some((fd) => {
          try {
            return readlinkSync(`/proc/${proc.pid}/fd/${fd}`) === blob;
          } catch {
            return false;
          }
        });
      } catch {
        return false;
      }
    };
    await until(holdsBlob, 'tarn has the value open');
    const t0 = performance.now();
    proc.kill('SIGINT');
    const r = await done;
    expect(performance.now() - t0).toBeLessThan(2000);
    expect(r.code).toBe(130);
    expect(lstatSync(fifo).isFIFO()).toBe(true);
    expect(readdirSync(dir)).toEqual(['fifo']);
  });

  it('a character device is written through and stays a device (/dev/null)', async (ctx) => {
    const { lake, key } = await lakeWith('into the void');
    const dir = folder();
    const nul = device(dir, 'null');
    if (!nul) return ctx.skip();
    const r = await tarn(['--storage', lake, 'get', key, '-o', nul]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(lstatSync(nul).isCharacterDevice()).toBe(true);
    if (nul.startsWith(dir)) expect(readdirSync(dir)).toEqual(['null']);
  });

  it('a full device (/dev/full) is one line, no stack, exit 1, and stays a device', async (ctx) => {
    const { lake, key } = await lakeWith(pseudoRandom('onto a full device', 100_000));
    const dir = folder();
    const full = device(dir, 'full');
    if (!full) return ctx.skip();
    const r = await tarn(['--storage', lake, 'get', key, '-o', full]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`tarn: cannot write ${full}: no space left on device; free some space there\n`);
    expect(lstatSync(full).isCharacterDevice()).toBe(true);
    if (full.startsWith(dir)) expect(readdirSync(dir)).toEqual(['full']);
  });

  it('a symbolic link is followed: its target is replaced, the link stays a link', async () => {
    const { lake, key } = await lakeWith('through a link');
    const dir = folder();
    const targetDir = folder();
    const target = join(targetDir, 'real.txt');
    writeFileSync(target, 'old');
    const link = join(dir, 'link.txt');
    symlinkSync(target, link);
    const r = await tarn(['--storage', lake, 'get', key, '-o', link]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
    expect(readlinkSync(link)).toBe(target);
    expect(readFileSync(target, 'utf8')).toBe('through a link');
    expect(readdirSync(dir)).toEqual(['link.txt']);
    expect(readdirSync(targetDir)).toEqual(['real.txt']);
  });

  it('a dangling symbolic link: its target is created, as `>` would', async () => {
    const { lake, key } = await lakeWith('dangling');
    const dir = folder();
    symlinkSync('made.txt', join(dir, 'link.txt'));
    const r = await tarn(['--storage', lake, 'get', key, '-o', join(dir, 'link.txt')]);
    expect(r.code, r.stderr).toBe(0);
    expect(lstatSync(join(dir, 'link.txt')).isSymbolicLink()).toBe(true);
    expect(readFileSync(join(dir, 'made.txt'), 'utf8')).toBe('dangling');
    expect(readdirSync(dir).sort()).toEqual(['link.txt', 'made.txt']);
  });

  it('a symbolic link to a FIFO is written through the FIFO', async () => {
    const { lake, key } = await lakeWith('link to a fifo');
    const dir = folder();
    const fifo = mkfifo(dir);
    symlinkSync(fifo, join(dir, 'link'));
    const get = tarn(['--storage', lake, 'get', key, '-o', join(dir, 'link')]);
    const reader = run('sh', ['-c', 'cat "$1"', 'sh', fifo]);
    expect((await get).code).toBe(0);
    expect((await reader).stdout).toBe('link to a fifo');
    expect(lstatSync(fifo).isFIFO()).toBe(true);
  });

  it('a folder is refused with one line, exit 1, and left as it was', async () => {
    const { lake, key } = await lakeWith('not into a folder');
    const dir = folder();
    const r = await tarn(['--storage', lake, 'get', key, '-o', dir]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`tarn: cannot write ${dir}: it is a folder; name a file in it\n`);
    expect(readdirSync(dir)).toEqual([]);
  });
});

describe('tarn get -o onto a regular file', () => {
  it('replaces it atomically and keeps its mode; a new file is writable by its owner', async () => {
    const { lake, key } = await lakeWith('replaced');
    const dir = folder();
    const existing = join(dir, 'existing.txt');
    writeFileSync(existing, 'old');
    chmodSync(existing, 0o600);
    const inodeBefore = statSync(existing).ino;
    expect((await tarn(['--storage', lake, 'get', key, '-o', existing])).code).toBe(0);
    expect(readFileSync(existing, 'utf8')).toBe('replaced');
    expect(statSync(existing).mode & 0o777).toBe(0o600);
    // Renamed over, not rewritten in place: a reader of the old file never sees a mix.
    expect(statSync(existing).ino).not.toBe(inodeBefore);
    const fresh = join(dir, 'fresh.txt');
    expect((await tarn(['--storage', lake, 'get', key, '-o', fresh])).code).toBe(0);
    expect(statSync(fresh).mode & 0o200).toBe(0o200);
    expect(readdirSync(dir).sort()).toEqual(['existing.txt', 'fresh.txt']);
  });

  it('a read that fails midway (a corrupt value with --verify) leaves the target as it was and no temp file', async () => {
    const data = pseudoRandom('corrupt midway', 3 << 20);
    const { lake, key } = await lakeWith(data);
    const blob = join(lake, key.slice(0, 2), key.slice(2));
    chmodSync(blob, 0o644);
    const bad = Buffer.from(data);
    bad.writeUInt8(bad.readUInt8(bad.length - 1) ^ 1, bad.length - 1);
    writeFileSync(blob, bad);
    const dir = folder();
    const target = join(dir, 'target.bin');
    writeFileSync(target, 'the old content');
    const r = await tarn(['--storage', lake, 'get', '--verify', key, '-o', target]);
    expect(r.code).toBe(4);
    expect(r.stderr).not.toMatch(STACK);
    expect(readFileSync(target, 'utf8')).toBe('the old content');
    expect(readdirSync(dir)).toEqual(['target.bin']);
  });
});
