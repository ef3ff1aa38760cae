import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { binary, freePort, probe, type Service, startService } from './index.js';

export interface Redis extends Service {
  readonly port: number;
  readonly url: string;
}

/** Debian's redis-server on a free loopback port, persistence off, data in a throwaway folder. */
export async function startRedis(dir = mkdtempSync(join(tmpdir(), 'bed-redis-'))): Promise<Redis> {
  const port = await freePort();
  const command = [
    binary('redis-server'),
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--dir',
    dir,
    '--save',
    '',
    '--appendonly',
    'no',
    '--protected-mode',
    'yes',
  ];
  const service = await startService({
    name: 'redis',
    command,
    dir,
    ready: () => probe(port, 'PING\r\n', /^\+PONG/),
  });
  return { ...service, port, url: `redis://127.0.0.1:${port}` };
}
