import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { available, binary, freePort, probe, provider, ServiceError, startService } from './index.js';

describe.runIf(available('redis') && provider('redis') === 'local')('bed: service lifecycle', () => {
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
    await s.stop();
    expect(await probe(port, 'PING\r\n', /PONG/)).toBe(false);
  });

  it('a test process killed with SIGKILL takes its servers with it', async () => {
    const port = await freePort();
    const script = fileURLToPath(new URL('./children/start-redis.ts', import.meta.url));
    const child = spawn(process.execPath, ['--import', 'tsx', script, String(port)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
    expect(await probe(port, 'PING\r\n', /PONG/)).toBe(true);
    child.kill('SIGKILL');
    const deadline = Date.now() + 10_000;
    while ((await probe(port, 'PING\r\n', /PONG/)) && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 200));
    expect(await probe(port, 'PING\r\n', /PONG/)).toBe(false);
  });
});
