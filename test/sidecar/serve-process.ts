import { type ChildProcess, spawn } from 'node:child_process';
import { request } from 'node:http';
import { collect, type Result, TARN_BIN } from '../helpers/spawn.js';

/** A `tarn serve` process started as a user starts it, once it printed where it listens. */
export interface Sidecar {
  child: ChildProcess;
  socket: string;
  /** What it printed on stderr up to the curl line. */
  banner: string;
  /** `http://127.0.0.1:<port>/metrics` when it serves metrics. */
  metricsUrl: string | undefined;
  /** Resolves when it exits, with everything it printed. */
  exited: Promise<Result>;
  /** SIGTERM, then its exit. */
  stop(): Promise<Result>;
}

export interface StartOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
}

/** Runs `node src-lib/bin/tarn.js serve <args>`; rejects with its output if it exits before listening. */
export function startSidecar(args: string[], options: StartOptions = {}): Promise<Sidecar> {
  const child = spawn(process.execPath, [TARN_BIN, 'serve', ...args], {
    cwd: options.cwd,
    env: { ...process.env, TARN_LOG_LEVEL: 'info', ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = collect(child);
  let stderr = '';
  return new Promise((resolve, reject) => {
    const onData = (d: Buffer) => {
      stderr += d.toString();
      const curl = /try: curl --unix-socket (\S+) /.exec(stderr);
      if (!curl || !stderr.slice(curl.index).includes('\n')) return;
      child.stderr?.off('data', onData);
      const metrics = /metrics: (http:\/\/\S+)/.exec(stderr);
      resolve({
        child,
        socket: curl[1] as string,
        banner: stderr,
        metricsUrl: metrics?.[1],
        exited,
        stop: () => {
          child.kill('SIGTERM');
          return exited;
        },
      });
    };
    child.stderr?.on('data', onData);
    exited.then((r) =>
      reject(new Error(`tarn serve exited (${r.code ?? r.signal}) before listening: ${r.stderr}`)),
    );
  });
}

export interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  text: string;
}

/** One request over a Unix socket (or TCP with `url`), the body given whole or written by `send`. */
export function call(
  socketPath: string | undefined,
  method: string,
  path: string,
  body?: Buffer | string | ((req: import('node:http').ClientRequest) => void),
  headers: Record<string, string> = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      socketPath ? { socketPath, method, path, headers, agent: false } : new URL(path),
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const b = Buffer.concat(chunks);
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: b, text: b.toString() });
        });
      },
    );
    req.on('error', reject);
    if (typeof body === 'function') body(req);
    else req.end(body);
  });
}

/** The JSON lines a sidecar wrote to stdout. */
export function logLines(stdout: string): Array<Record<string, unknown>> {
  return stdout
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** One sample of a Prometheus text exposition: `name{labels}` → value (labels as written). */
export function sample(text: string, series: string): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    if (line.slice(0, at) === series) return Number(line.slice(at + 1));
  }
  return undefined;
}
