import { spawn } from 'node:child_process';
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { sha256 } from '../../helpers/data.js';
import { collect, type Result, TARN_BIN, tarn } from '../../helpers/spawn.js';
import { freshPath, tempDir } from '../../helpers/tmp.js';

const base = tempDir();
// The user runs of this file may switch to (below) must reach the files under it.
chmodSync(base, 0o755);

/** No stack trace: no line of the form `    at fn (file:line)`. */
const STACK = /^\s+at .+/m;

/** Runs tarn with its stdout on `stdoutFd`, e.g. /dev/full. */
function tarnTo(args: string[], stdoutFd: number): Promise<Result> {
  const child = spawn(process.execPath, [TARN_BIN, ...args], { stdio: ['ignore', stdoutFd, 'pipe'] });
  return collect(child);
}

/**
 * Runs tarn as a user who is denied what mode 0 denies. As root (who is denied nothing) that is
 * `nobody`; otherwise the user running the tests is already such a user.
 */
function tarnUnprivileged(args: string[]): Promise<Result> {
  const asNobody = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {};
  const child = spawn(process.execPath, [TARN_BIN, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    ...asNobody,
  });
  return collect(child);
}

async function lakeWith(value: string): Promise<{ lake: string; key: string }> {
  const lake = freshPath(base);
  await tarn(['init', lake]);
  const put = await tarn(['--storage', lake, 'put', '-'], { input: value });
  expect(put.code, put.stderr).toBe(0);
  return { lake, key: sha256(value) };
}

describe('expected OS errors', () => {
  it('`cat key > /dev/full`: one line saying stdout is full, no stack, exit 1', async () => {
    const { lake, key } = await lakeWith('to a full disk');
    const full = openSync('/dev/full', 'w');
    try {
      const r = await tarnTo(['--storage', lake, 'cat', key], full);
      expect(r.code).toBe(1);
      expect(r.stderr).toBe('tarn: cannot write to stdout: no space left on device; free some space there\n');
    } finally {
      closeSync(full);
    }
  });

  it('with --json the error is one JSON object on stderr: {"error":{code, message, errno}}', async () => {
    const { lake, key } = await lakeWith('to a full disk, in JSON');
    const full = openSync('/dev/full', 'w');
    try {
      const r = await tarnTo(['--json', '--storage', lake, 'cat', key], full);
      expect(r.code).toBe(1);
      expect(r.stderr.endsWith('\n')).toBe(true);
      expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
      expect(JSON.parse(r.stderr)).toEqual({
        error: {
          code: 'TARN_IO',
          message: 'cannot write to stdout: no space left on device; free some space there',
          errno: 'ENOSPC',
        },
      });
    } finally {
      closeSync(full);
    }
  });

  it('get -o into a missing folder: one line naming the folder, no stack, exit 1, nothing created', async () => {
    const { lake, key } = await lakeWith('nowhere to go');
    const folder = join(base, 'no-such-folder');
    const r = await tarn(['--storage', lake, 'get', key, '-o', join(folder, 'out.txt')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      `tarn: cannot write ${join(folder, 'out.txt')}: the folder ${folder} does not exist; create it first\n`,
    );
    expect(existsSync(folder)).toBe(false);
  });

  it('put of a file the user may not read: one line naming the file, no stack, exit 1', async () => {
    const lake = freshPath(base);
    await tarn(['init', lake]);
    chmodSync(lake, 0o777);
    chmodSync(join(lake, '.tmp'), 0o777);
    const secret = join(base, 'secret.txt');
    writeFileSync(secret, 'not yours');
    chmodSync(secret, 0);
    const r = await tarnUnprivileged(['--storage', lake, 'put', secret]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      `tarn: cannot open ${secret}: permission denied; check the permissions of it and of its folders (ls -ld)\n`,
    );
  });

  it('put into a lake the user may not write: one line naming the path, no stack, nonzero exit', async () => {
    const lake = freshPath(base);
    await tarn(['init', lake]);
    chmodSync(lake, 0o755);
    chmodSync(join(lake, '.tmp'), 0o755);
    const file = join(base, 'readable.txt');
    writeFileSync(file, 'readable by all');
    chmodSync(file, 0o644);
    for (const json of [false, true]) {
      const r = await tarnUnprivileged([...(json ? ['--json'] : []), '--storage', lake, 'put', file]);
      expect(r.code).not.toBe(0);
      expect(r.stderr).not.toMatch(STACK);
      expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
      if (json) expect(JSON.parse(r.stderr).error.message).toContain(lake);
      else expect(r.stderr).toMatch(new RegExp(`^tarn: .*${lake}.*permission denied`));
    }
  });

  it('a usage error with --json is a JSON object too, exit 2', async () => {
    const r = await tarn(['--json', 'frobnicate']);
    expect(r.code).toBe(2);
    expect(JSON.parse(r.stderr)).toEqual({
      error: { code: 'TARN_USAGE', message: 'unknown command "frobnicate"' },
    });
    const missing = await tarn(['--json', '--storage', join(base, 'no-lake'), 'ls']);
    expect(missing.code).toBe(6);
    expect(JSON.parse(missing.stderr).error.code).toBe('TARN_CONFIG');
  });

  it('`get -o` into a folder that is a file: one line, exit 1', async () => {
    const { lake, key } = await lakeWith('under a file');
    const file = join(base, 'a-file');
    writeFileSync(file, '');
    const r = await tarn(['--storage', lake, 'get', key, '-o', join(file, 'out.txt')]);
    expect(r.code).toBe(1);
    expect(r.stderr).not.toMatch(STACK);
    expect(r.stderr).toMatch(/^tarn: cannot write .*a-file\/out\.txt: .*not a folder/);
    mkdirSync(join(base, 'ok'), { recursive: true });
  });
});

describe('--storage naming a config file', () => {
  it.each(['missing.yaml', 'missing.yml', 'missing.json'])(
    '%s that does not exist is a config error (exit 6) for put, ls and describe, and creates nothing',
    async (name) => {
      const cwd = freshPath(base, 'cwd');
      mkdirSync(cwd);
      writeFileSync(join(cwd, 'file.txt'), 'x');
      for (const args of [['put', 'file.txt'], ['ls'], ['describe']]) {
        const r = await tarn(['--storage', name, ...args], { cwd });
        expect(r.code, args[0]).toBe(6);
        expect(r.stderr, args[0]).toBe(
          `tarn: the config file ${name} does not exist; check --storage or $TARN_STORAGE\n`,
        );
      }
      expect(readdirSync(cwd)).toEqual(['file.txt']);
    },
  );

  it('a config whose build fails creates no lake (exit 6)', async () => {
    const cwd = freshPath(base, 'cwd');
    mkdirSync(cwd);
    writeFileSync(join(cwd, 'file.txt'), 'x');
    writeFileSync(
      join(cwd, 'tarn.yaml'),
      'location:\n  - new-lake\n  - { kind: redis, password: { env: TARN_TEST_UNSET } }\n',
    );
    const r = await tarn(['--storage', 'tarn.yaml', 'put', 'file.txt'], { cwd });
    expect(r.code).toBe(6);
    expect(r.stderr).toMatch(/TARN_TEST_UNSET is not set/);
    expect(readdirSync(cwd).sort()).toEqual(['file.txt', 'tarn.yaml']);
  });
});

describe('usage errors', () => {
  it('an unknown flag is a usage error, also as JSON', async () => {
    const human = await tarn(['ls', '--frobnicate']);
    expect(human.code).toBe(2);
    expect(human.stderr).toMatch(/^tarn: Unknown option '--frobnicate'.*\nusage: tarn/s);
    const json = await tarn(['--json', 'ls', '--frobnicate']);
    expect(json.code).toBe(2);
    expect(JSON.parse(json.stderr).error).toMatchObject({ code: 'TARN_USAGE' });
  });
});
