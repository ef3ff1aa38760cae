import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  availableLocally,
  binary,
  freePort,
  probe,
  processAlive,
  ServiceError,
  startService,
} from './index.js';

// The tethers are the local provider's; they are tested on the local programs whatever the provider
// (a missing redis-server fails this in CI like any other missing service).
describe.runIf(availableLocally('redis'))('bed: service lifecycle', () => {
  it('a server that fails to start reports its command and the end of its log', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bed-fail-'));
    const command = [binary('redis-server'), '--port', 'not-a-port'];
    const err = await startService({ name: 'redis', command, dir, ready: async () => false }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ServiceError);
    const message = (err as Error).message;
    expect(message).toContain(`command: ${binary('redis-server')} --port not-a-port`);
    expect(message).toMatch(/it exited \(1\)/);
    expect(message).toMatch(/port/i); // redis-server's own complaint, from the log
  });

  it('stop() leaves no process behind', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bed-stop-'));
    const port = await freePort();
    const s = await startService({
      name: 'redis',
      command: [binary('redis-server'), '--port', String(port), '--save', ''],
      dir,
      ready: () => probe(port, 'PING\r\n', /PONG/),
    });
    const pid = s.pid as number;
    expect(processAlive(pid)).toBe(true);
    await s.stop();
    // stop() resolves once the tether has reaped the server: the process itself must be gone.
    expect(processAlive(pid)).toBe(false);
  });

  it('a test process killed with SIGKILL takes its servers with it', async () => {
    const port = await freePort();
    const script = fileURLToPath(new URL('./children/start-redis.ts', import.meta.url));
    const child = spawn(process.execPath, ['--import', 'tsx', script, String(port)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    // The child prints the server's pid once the server answers.
    const pid = await new Promise<number>((resolve) =>
      child.stdout.once('data', (d: Buffer) => resolve(Number(d.toString().trim()))),
    );
    expect(await probe(port, 'PING\r\n', /PONG/)).toBe(true);
    expect(processAlive(pid)).toBe(true);
    child.kill('SIGKILL');
    // The tether polls its parent every 0.5 s and then gives the server up to 3 s to exit: watch
    // the process itself (a port that stops answering could also be a hung server).
    const deadline = Date.now() + 10_000;
    while (processAlive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(processAlive(pid)).toBe(false);
  });
});
