import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';

/** A server the bed started: stopped by `stop()`, and by the death of the test process in any case. */
export interface Service {
  readonly name: string;
  readonly log: string;
  /** The server's own process id (local provider; a container has none here). */
  readonly pid?: number;
  stop(): Promise<void>;
  /** Freezes the server (SIGSTOP): it keeps its connections but answers nothing, like a hung host. */
  pause(): void;
  /** Lets a paused server go on (SIGCONT). */
  resume(): void;
}

export class ServiceError extends Error {
  constructor(name: string, command: string[], log: string, reason: string) {
    let tail = '';
    try {
      tail = readFileSync(log, 'utf8').split('\n').slice(-25).join('\n');
    } catch {
      tail = '(no log)';
    }
    super(
      `${name} did not start: ${reason}\ncommand: ${command.map(quote).join(' ')}\nlog (${log}), last lines:\n${tail}`,
    );
    this.name = 'ServiceError';
  }
}

const quote = (s: string) => (/^[\w./:=@,+-]+$/.test(s) ? s : `'${s.replace(/'/g, "'\\''")}'`);

// A shell wrapper that runs the server and stops it when the test process is gone, even after a
// SIGKILL of the test runner: nothing is left behind.
const TETHER = `
"$@" & svc=$!
echo $svc > "$TETHER_PIDFILE"
trap 'kill -TERM $svc 2>/dev/null; wait $svc; exit 0' TERM INT
while kill -0 "$TETHER_PARENT" 2>/dev/null && kill -0 $svc 2>/dev/null; do sleep 0.5; done
if ! kill -0 $svc 2>/dev/null; then wait $svc; exit $?; fi
kill -TERM $svc 2>/dev/null
for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 $svc 2>/dev/null || exit 0; sleep 0.3; done
kill -KILL $svc 2>/dev/null
`;

const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of live) child.kill('SIGTERM');
});

export interface StartOptions {
  name: string;
  command: string[];
  dir: string;
  env?: NodeJS.ProcessEnv;
  /** Resolves true when the server answers; polled until `timeoutMs`. */
  ready: () => Promise<boolean>;
  timeoutMs?: number;
}

/** Starts a server, waits until it answers, and fails with its log tail and command if it does not. */
export async function startService(options: StartOptions): Promise<Service> {
  const { name, command, dir } = options;
  const log = join(dir, `${name}.log`);
  const pidFile = join(dir, `${name}.pid`);
  const fd = openSync(log, 'a');
  const child = spawn('bash', ['-c', TETHER, 'tether', ...command], {
    cwd: dir,
    env: { ...process.env, ...options.env, TETHER_PARENT: String(process.pid), TETHER_PIDFILE: pidFile },
    stdio: ['ignore', fd, fd],
  });
  closeSync(fd);
  live.add(child);
  let exited: string | undefined;
  const exitedPromise = new Promise<void>((resolve) => {
    child.once('exit', (code, signal) => {
      live.delete(child);
      exited = `it exited (${signal ?? code})`;
      resolve();
    });
    child.once('error', (e) => {
      exited = `it could not be spawned (${e.message})`;
      resolve();
    });
  });
  const signalServer = (sig: NodeJS.Signals) => {
    const pid = Number(readFileSync(pidFile, 'utf8'));
    if (pid > 0) process.kill(pid, sig);
  };
  const pause = () => signalServer('SIGSTOP');
  const resume = () => signalServer('SIGCONT');
  const stop = async () => {
    if (exited) return;
    // A paused server would not act on TERM until it runs again.
    try {
      resume();
    } catch {
      // already gone
    }
    child.kill('SIGTERM');
    await exitedPromise;
  };
  const began = Date.now();
  const deadline = began + (options.timeoutMs ?? 30_000);
  for (;;) {
    if (exited) throw new ServiceError(name, command, log, exited);
    if (await options.ready().catch(() => false)) {
      if (process.env.TARN_BED_TIMINGS) console.log(`bed: ${name} ready in ${Date.now() - began} ms`);
      // The tether writes the pid before the server can answer, so it is there once ready.
      const pid = Number(readFileSync(pidFile, 'utf8'));
      return { name, log, pid, stop, pause, resume };
    }
    if (Date.now() > deadline) {
      await stop();
      throw new ServiceError(name, command, log, `no answer within ${options.timeoutMs ?? 30_000} ms`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A free TCP port on 127.0.0.1 (the kernel picks it; the small race with other tests is tolerated). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}

/** Whether a process with this id exists (signal 0 checks without sending anything). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: it exists but belongs to someone else.
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Sends `send` to 127.0.0.1:port and resolves whether the first answer matches `expect`. */
export function probe(port: number, send: string | undefined, expect: RegExp): Promise<boolean> {
  return new Promise((resolve) => {
    import('node:net').then(({ connect }) => {
      const socket = connect(port, '127.0.0.1');
      const done = (ok: boolean) => {
        socket.destroy();
        resolve(ok);
      };
      socket.setTimeout(1000, () => done(false));
      socket.once('error', () => done(false));
      socket.once('connect', () => send !== undefined && socket.write(send));
      socket.once('data', (d) => done(expect.test(d.toString())));
    });
  });
}

/** Whether an HTTP(S) GET answers with a status below 400. */
export async function httpReady(url: string, init?: RequestInit): Promise<boolean> {
  const res = await fetch(url, { ...init, signal: AbortSignal.timeout(2000) });
  await res.arrayBuffer();
  return res.status < 400;
}
