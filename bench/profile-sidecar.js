// Drives a sidecar for a CPU profile of its GET path: fills a lake with `count` 1 KiB values
// in-process, starts `tarn serve` on it under `node --cpu-prof`, GETs every value twice at 16
// clients, and stops the server (the profile is written at exit).
// argv: <profile dir> [count] [mode: get|put]   (put: profiles 1 KiB PUTs instead)
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { HashKeyStorage } from '@tarnjs/tarn';
import { Agent, request } from 'undici';

const [profileDir, countArg = '20000', mode = 'get'] = process.argv.slice(2);
const n = Number(countArg);
const dir = mkdtempSync(join(tmpdir(), 'tarn-profile-'));
const lake = join(dir, 'lake');
const socket = join(dir, 's.sock');
const keys = [];
const storage = new HashKeyStorage(lake);
if (mode === 'get') for (let i = 0; i < n; i++) keys.push(await storage.write(randomBytes(1024)));
await storage.close();
const tarn = fileURLToPath(new URL('../src-lib/bin/tarn.js', import.meta.url));
const child = spawn(
  process.execPath,
  [`--cpu-prof`, `--cpu-prof-dir=${profileDir}`, tarn, 'serve', '--storage', lake, '--socket', socket],
  { stdio: 'ignore', env: { ...process.env, TARN_LOG_LEVEL: 'warn' } },
);
while (!existsSync(socket)) await new Promise((r) => setTimeout(r, 50));
await new Promise((r) => setTimeout(r, 300));
const agent = new Agent({ connect: { socketPath: socket }, connections: 32 });
async function drive(label, op) {
  let next = 0;
  const t0 = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      for (let i = next++; i < n; i = next++) await op(i);
    }),
  );
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  console.log(`${label}: ${(n / s).toFixed(0)}/s`);
}
for (let round = 0; round < 2; round++)
  if (mode === 'put')
    await drive('PUT', async () => {
      const r = await request('http://tarn/v1/blobs', {
        method: 'PUT',
        body: randomBytes(1024),
        dispatcher: agent,
      });
      await r.body.json();
    });
  else
    await drive('GET', async (i) => {
      const r = await request(`http://tarn/v1/blobs/${keys[i]}`, { dispatcher: agent });
      await r.body.arrayBuffer();
    });
await agent.close();
const exited = new Promise((r) => child.once('exit', r));
child.kill('SIGTERM');
await exited;
rmSync(dir, { recursive: true, force: true });
