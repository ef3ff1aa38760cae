import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const REPO = fileURLToPath(new URL('../..', import.meta.url));
export const TARN_BIN = fileURLToPath(new URL('../../src-lib/bin/tarn.js', import.meta.url));

export interface Result {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  stdoutBytes: Buffer;
}

/** Runs a command to completion, feeding `input` to its stdin. */
export function run(
  cmd: string,
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; input?: Buffer | string } = {},
): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: options.cwd,
      env: { ...process.env, ...options.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    collect(child).then(resolve, reject);
    child.stdin?.end(options.input);
  });
}

export function collect(child: ChildProcess): Promise<Result> {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout?.on('data', (d: Buffer) => out.push(d));
  child.stderr?.on('data', (d: Buffer) => err.push(d));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      const stdoutBytes = Buffer.concat(out);
      resolve({
        code,
        signal,
        stdout: stdoutBytes.toString(),
        stderr: Buffer.concat(err).toString(),
        stdoutBytes,
      });
    });
  });
}

/** Runs the tarn CLI as a user would. */
export function tarn(args: string[], options: Parameters<typeof run>[2] = {}): Promise<Result> {
  return run(process.execPath, [TARN_BIN, ...args], options);
}

/** Runs a script of test/helpers/children with node. */
export function child(script: string, args: string[]): ChildProcess {
  return spawn(process.execPath, [fileURLToPath(new URL(`./children/${script}`, import.meta.url)), ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}
