import { spawn } from 'node:child_process';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { pseudoRandom, sha256 } from '../../helpers/data.js';
import { collect, run, TARN_BIN, tarn } from '../../helpers/spawn.js';
import { fifoIn, freshPath, tempDir } from '../../helpers/tmp.js';
import { until } from '../../helpers/wait.js';

const base = tempDir();
const tmpEntries = (lake: string) => readdirSync(join(lake, '.tmp'));
const TARN = `"${process.execPath}" "${TARN_BIN}"`;

async function newLake(): Promise<string> {
  const lake = freshPath(base);
  const init = await tarn(['init', lake]);
  expect(init.code, init.stderr).toBe(0);
  return lake;
}

const mkfifo = () => fifoIn(base);

describe('tarn put of pipes and FIFOs', () => {
  it('`… | tarn put /dev/stdin` stores the piped bytes', async () => {
    const lake = await newLake();
    const r = await run('sh', [
      '-c',
      `printf 'through /dev/stdin' | ${TARN} --storage "${lake}" put /dev/stdin`,
    ]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`${sha256('through /dev/stdin')}\n`);
  });

  it('`tarn put <(cmd)` stores the output of cmd', async () => {
    const lake = await newLake();
    const r = await run('bash', ['-c', `${TARN} --storage "${lake}" put <(printf 'process substitution')`]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`${sha256('process substitution')}\n`);
  });

  it('a named FIFO is stored once its writer has written and closed it', async () => {
    const lake = await newLake();
    const fifo = mkfifo();
    const data = pseudoRandom('named fifo', (5 << 20) + 3);
    const src = join(base, 'fifo-source.bin');
    writeFileSync(src, data);
    const put = tarn(['--storage', lake, 'put', fifo]);
    const writer = run('sh', ['-c', 'cat "$1" > "$2"', 'sh', src, fifo]);
    const r = await put;
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`${sha256(data)}\n`);
    expect((await writer).code).toBe(0);
    expect(tmpEntries(lake)).toEqual([]);
  });

  it('a FIFO nobody writes: Ctrl-C exits 130 at once, stores nothing, leaves no temp file', async () => {
    const lake = await newLake();
    const fifo = mkfifo();
    const proc = spawn(process.execPath, [TARN_BIN, '--storage', lake, 'put', fifo], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const done = collect(proc);
    // The temp file exists once the FIFO is open and the put waits for its first byte.
    await until(() => tmpEntries(lake).length > 0, 'the put has its temp file');
    const t0 = performance.now();
    proc.kill('SIGINT');
    const r = await done;
    expect(performance.now() - t0).toBeLessThan(2000);
    expect(r.code).toBe(130);
    expect(r.stderr).toBe('tarn: interrupted; nothing partial was stored\n');
    expect(tmpEntries(lake)).toEqual([]);
    expect((await tarn(['--storage', lake, 'ls'])).stdout).toBe('');
  });
});

describe('tarn put - and stdin', () => {
  it('a closed stdin (`<&-`) is an error that says so, and stores nothing', async () => {
    const lake = await newLake();
    const r = await run('sh', ['-c', `exec ${TARN} --storage "${lake}" put - <&-`]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      'tarn: stdin is closed; give `tarn put -` a file or a pipe on stdin, or name the files to put\n',
    );
    expect((await tarn(['--storage', lake, 'ls'])).stdout).toBe('');
  });

  it('an open, empty stdin (`</dev/null`) stores the empty value', async () => {
    const lake = await newLake();
    const r = await run('sh', ['-c', `exec ${TARN} --storage "${lake}" put - </dev/null`]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`${sha256('')}\n`);
  });
});
