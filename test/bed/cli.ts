// Starts one service of the bed by hand, prints how to reach it, and keeps it up until Ctrl-C:
//   npm run bed -- redis | sshd | nginx [folder] | s3 | kube
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Service } from './index.js';
import { startKube, startNginx, startRedis, startS3, startSshd } from './services.js';

const [name, arg] = process.argv.slice(2);
const starters: Record<string, () => Promise<Service & Record<string, unknown>>> = {
  redis: () => startRedis() as never,
  sshd: () => startSshd() as never,
  nginx: () => startNginx(arg ?? mkdtempSync(join(tmpdir(), 'bed-nginx-root-'))) as never,
  s3: () => startS3() as never,
  kube: () => startKube() as never,
};
const start = name ? starters[name] : undefined;
if (!start) {
  console.error(`usage: npm run bed -- <${Object.keys(starters).join('|')}> [nginx folder]`);
  process.exit(2);
}
const service = await start();
const { stop: _stop, pause: _pause, resume: _resume, ...info } = service;
console.log(JSON.stringify(info, null, 2));
console.log(`${name} is up; its log: ${service.log}. Ctrl-C stops it.`);
const shutdown = async () => {
  await service.stop();
  process.exit(0);
};
process.once('SIGINT', shutdown);
process.once('SIGTERM', shutdown);
setInterval(() => undefined, 60_000);
