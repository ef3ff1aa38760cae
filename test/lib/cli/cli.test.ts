import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { pseudoRandom, sha256 } from '../../helpers/data.js';
import { tarn } from '../../helpers/spawn.js';
import { freshPath, tempDir } from '../../helpers/tmp.js';

const base = tempDir();

describe('tarn CLI', () => {
  it('puts, gets, cats, lists and removes on the default ./.tarn lake', async () => {
    const cwd = freshPath(base, 'cwd');
    mkdirSync(cwd);
    const data = pseudoRandom('cli', 123_456);
    writeFileSync(join(cwd, 'file.bin'), data);
    const key = sha256(data);

    const put = await tarn(['put', 'file.bin'], { cwd });
    expect(put.code, put.stderr).toBe(0);
    expect(put.stdout).toBe(`${key}\n`);
    expect(existsSync(join(cwd, '.tarn', 'config.yml'))).toBe(true);

    const stdin = await tarn(['put', '-'], { cwd, input: 'from stdin' });
    expect(stdin.stdout.trim()).toBe(sha256('from stdin'));

    const get = await tarn(['get', key, '-o', 'copy.bin'], { cwd });
    expect(get.code, get.stderr).toBe(0);
    expect(readFileSync(join(cwd, 'copy.bin')).equals(data)).toBe(true);

    const cat = await tarn(['cat', '--verify', key], { cwd });
    expect(cat.stdoutBytes.equals(data)).toBe(true);

    const ls = await tarn(['ls'], { cwd });
    expect(ls.stdout.trim().split('\n').sort()).toEqual([key, sha256('from stdin')].sort());

    expect((await tarn(['has', key], { cwd })).code).toBe(0);
    expect((await tarn(['rm', key], { cwd })).code).toBe(0);
    expect((await tarn(['has', key], { cwd })).code).toBe(3);
    expect((await tarn(['rm', key], { cwd })).code).toBe(3);
  });

  it('init with bad options fails with exit 6 and leaves no folder behind', async () => {
    for (const bad of [
      ['--levels', 'a,b'],
      ['--max-size', '10Q'],
      ['--algorithm', 'md99'],
    ]) {
      const lake = freshPath(base);
      const r = await tarn(['init', lake, ...bad]);
      expect(r.code).toBe(6);
      expect(existsSync(lake)).toBe(false);
    }
  });

  it('speaks JSON with --json', async () => {
    const lake = freshPath(base);
    const init = await tarn(['--json', 'init', lake, '--max-size', '1G']);
    expect(JSON.parse(init.stdout)).toMatchObject({
      root: lake,
      levels: [1, -1],
      algorithm: 'sha256',
      maxSize: 1e9,
    });
    const put = await tarn(['--json', '--storage', lake, 'put', '-'], { input: 'json' });
    expect(JSON.parse(put.stdout)).toEqual({ key: sha256('json'), source: '-', bytes: 4 });
    const has = await tarn(['--json', '--storage', lake, 'has', sha256('json')]);
    expect(JSON.parse(has.stdout)).toEqual({ key: sha256('json'), present: true });
    const verify = await tarn(['--json', '--storage', lake, 'verify']);
    expect(JSON.parse(verify.stdout)).toMatchObject({ checked: 1, bytes: 4, corrupt: [] });
  });

  it('takes the storage from TARN_STORAGE or a config file', async () => {
    const lake = freshPath(base);
    await tarn(['init', lake]);
    const viaEnv = await tarn(['put', '-'], { input: 'env', env: { TARN_STORAGE: lake } });
    expect(viaEnv.stdout.trim()).toBe(sha256('env'));
    const cfg = join(base, 'tarn.yaml');
    writeFileSync(cfg, `location:\n  kind: disk\n  root: ${lake}\n`);
    const viaFile = await tarn(['--storage', cfg, 'cat', sha256('env')]);
    expect(viaFile.stdout).toBe('env');
  });

  it('exit codes say what went wrong', async () => {
    const lake = freshPath(base);
    await tarn(['init', lake, '--max-size', '10']);
    const s = ['--storage', lake];
    expect((await tarn([])).code).toBe(2);
    expect((await tarn(['frobnicate'])).code).toBe(2);
    const badKey = await tarn([...s, 'get', '../../etc/passwd']);
    expect(badKey.code).toBe(2);
    expect(badKey.stderr).toMatch(/invalid key/);
    expect((await tarn([...s, 'cat', sha256('missing')])).code).toBe(3);
    const refused = await tarn([...s, 'put', '-'], { input: 'more than ten bytes' });
    expect(refused.code).toBe(5);
    expect(refused.stderr).toMatch(/no location accepted/);
    expect((await tarn(['--storage', join(base, 'nowhere'), 'ls'])).code).toBe(6);
    const mismatch = await tarn([...s, 'put', '-', '--expect', sha256('other')], { input: 'abc' });
    expect(mismatch.code).toBe(7);

    const bad = join(base, 'bad.yaml');
    writeFileSync(bad, 'location:\n  kind: disk\n  root: 42\n');
    const cfg = await tarn(['--storage', bad, 'ls']);
    expect(cfg.code).toBe(6);
    expect(cfg.stderr).toMatch(/location\.root/);

    const small = await tarn([...s, 'put', '-'], { input: 'tiny' });
    const key = small.stdout.trim();
    const path = join(lake, key.slice(0, 2), key.slice(2));
    chmodSync(path, 0o644);
    writeFileSync(path, 'TINY');
    expect((await tarn([...s, 'cat', '--verify', key])).code).toBe(4);
    writeFileSync(join(base, 'x'), 'tiny');
    await tarn([...s, 'put', join(base, 'x')]);
    chmodSync(path, 0o644);
    writeFileSync(path, 'TINY');
    const verify = await tarn([...s, 'verify']);
    expect(verify.code).toBe(4);
    expect(verify.stderr).toMatch(new RegExp(`corrupt: ${key}`));
  });

  it('Ctrl-C during a put stores nothing and exits 130', async () => {
    const lake = freshPath(base);
    await tarn(['init', lake]);
    const { spawn } = await import('node:child_process');
    const { collect, TARN_BIN } = await import('../../helpers/spawn.js');
    const proc = spawn(process.execPath, [TARN_BIN, '--storage', lake, 'put', '-'], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const done = collect(proc);
    proc.stdin.on('error', () => undefined); // the child stops reading when interrupted
    proc.stdin.write(pseudoRandom('interrupted', 3 << 20));
    // Its temp file exists once the put is under way (stdin stays open: it then waits for more).
    const { readdirSync } = await import('node:fs');
    const { until } = await import('../../helpers/wait.js');
    await until(() => readdirSync(join(lake, '.tmp')).length > 0, 'the put has its temp file');
    proc.kill('SIGINT');
    const r = await done;
    expect(r.code).toBe(130);
    expect(r.stderr).toMatch(/interrupted; nothing partial was stored/);
    expect((await tarn(['--storage', lake, 'ls'])).stdout).toBe('');
    expect(readdirSync(join(lake, '.tmp'))).toEqual([]);
  });

  it('get -o of a missing key creates no target (exit 3)', async () => {
    const lake = freshPath(base);
    await tarn(['init', lake]);
    const out = join(base, 'target.bin');
    const r = await tarn(['--storage', lake, 'get', sha256('absent'), '-o', out]);
    expect(r.code).toBe(3);
    expect(existsSync(out)).toBe(false);
  });
});
