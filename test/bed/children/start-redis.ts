// Starts a redis-server through the bed, says so, and waits to be killed (see process.test.ts).
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { binary, probe, startService } from '../index.js';

const port = Number(process.argv[2]);
await startService({
  name: 'redis',
  command: [binary('redis-server'), '--port', String(port), '--save', ''],
  dir: mkdtempSync(join(tmpdir(), 'bed-orphan-')),
  ready: () => probe(port, 'PING\r\n', /PONG/),
});
process.stdout.write('ready\n');
setInterval(() => undefined, 1000);
