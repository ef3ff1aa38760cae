// Starts a redis-server through the bed, prints its pid, and waits to be killed (see process.test.ts).
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { binary, probe, startService } from '../index.js';

const port = Number(process.argv[2]);
const redis = await startService({
  name: 'redis',
  command: [binary('redis-server'), '--port', String(port), '--save', ''],
  dir: mkdtempSync(join(tmpdir(), 'bed-orphan-')),
  ready: () => probe(port, 'PING\r\n', /PONG/),
});
process.stdout.write(`${redis.pid}\n`);
setInterval(() => undefined, 1000);
