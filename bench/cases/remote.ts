// Every remote location on its test-bed server: 1 KiB writes and reads per second and 100 MiB
// throughput, each beside the raw client doing the same transfer in the same run.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import {
  DiskLocation,
  HashKeyStorage,
  type Location,
  NginxLocation,
  RedisLocation,
  S3Location,
  SCPLocation,
  SFTPLocation,
} from '@tarnjs/tarn';
import { Redis } from 'ioredis';
import SftpClient from 'ssh2-sftp-client';
import { request } from 'undici';
import { binary } from '../../test/bed/index.js';
import { startNginx, startRedis, startS3, startSshd } from '../../test/bed/services.js';

const SMALL = Number(process.env.BENCH_REMOTE_COUNT ?? 500);
const BIG = 100 << 20;
const MiB = 1 << 20;

/** Runs `count` tasks with at most `concurrency` in flight. */
async function pool(
  count: number,
  concurrency: number,
  task: (i: number) => Promise<unknown>,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < count) await task(next++);
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}

interface Row {
  label: string;
  tarn: number;
  raw: number;
  unit: string;
}

async function secs(fn: () => Promise<unknown>): Promise<number> {
  const t = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t) / 1e9;
}

/** 1 KiB puts and gets through tarn (8 in flight), and the big value's write and read. */
async function measure(location: Location, seedBig?: (data: Buffer) => Promise<string>, count = SMALL) {
  const SMALL = count;
  const storage = new HashKeyStorage(location);
  const values = Array.from({ length: SMALL }, () => randomBytes(1024));
  const keys: string[] = new Array(SMALL);
  const put = seedBig
    ? undefined
    : await secs(() =>
        pool(SMALL, 8, async (i) => {
          keys[i] = await storage.write(values[i] as Buffer);
        }),
      );
  const big = randomBytes(BIG);
  let bigKey = '';
  const bigPut = seedBig ? undefined : await secs(async () => (bigKey = await storage.write(big)));
  if (seedBig) {
    for (let i = 0; i < SMALL; i++) keys[i] = await seedBig(values[i] as Buffer);
    bigKey = await seedBig(big);
  }
  const get = await secs(() => pool(SMALL, 8, (i) => storage.read(keys[i] as string, (v) => v.bytes())));
  const bigGet = await secs(() =>
    storage.read(bigKey, async (v) => {
      for await (const _ of v.stream()) {
        // drain
      }
    }),
  );
  await storage.close();
  return { put, get, bigPut, bigGet };
}

export async function remote(): Promise<Record<string, Row[]>> {
  const out: Record<string, Row[]> = {};
  const ops = (s: number) => SMALL / s;
  const mibs = (s: number) => BIG / MiB / s;
  const rows = (
    t: Awaited<ReturnType<typeof measure>>,
    raw: { put?: number; get: number; bigPut?: number; bigGet: number },
  ) => {
    const r: Row[] = [];
    if (t.put && raw.put)
      r.push({ label: '1 KiB write', tarn: ops(t.put), raw: ops(raw.put), unit: 'ops/s' });
    r.push({ label: '1 KiB read', tarn: ops(t.get), raw: ops(raw.get), unit: 'ops/s' });
    if (t.bigPut && raw.bigPut)
      r.push({ label: '100 MiB write', tarn: mibs(t.bigPut), raw: mibs(raw.bigPut), unit: 'MiB/s' });
    r.push({ label: '100 MiB read', tarn: mibs(t.bigGet), raw: mibs(raw.bigGet), unit: 'MiB/s' });
    return r;
  };
  const values = Array.from({ length: SMALL }, () => randomBytes(1024));
  const big = randomBytes(BIG);

  // Redis: ioredis SET/GET, and redis-benchmark for the server's own ceiling.
  {
    const redis = await startRedis();
    const t = await measure(new RedisLocation({ url: redis.url, maxValueSize: 128 * MiB }));
    const c = new Redis(redis.url);
    const raw = {
      put: await secs(() => pool(SMALL, 8, (i) => c.set(`raw${i}`, values[i] as Buffer))),
      get: await secs(() => pool(SMALL, 8, (i) => c.getBuffer(`raw${i}`))),
      bigPut: await secs(() => c.set('rawbig', big)),
      bigGet: await secs(() => c.getBuffer('rawbig')),
    };
    c.disconnect();
    const rb = execFileSync(binary('redis-benchmark'), [
      '-p',
      String(redis.port),
      '-t',
      'set,get',
      '-d',
      '1024',
      '-n',
      '20000',
      '-c',
      '8',
      '-q',
    ])
      .toString()
      .trim();
    out.redis = rows(t, raw);
    console.log(`redis-benchmark (1 KiB, 8 clients): ${rb.replace(/\s+/g, ' ')}`);
    await redis.stop();
  }

  // S3 (MinIO): the AWS SDK's own PutObject/GetObject.
  {
    const s3 = await startS3();
    const creds = { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey };
    const client = new S3Client({
      endpoint: s3.endpoint,
      region: s3.region,
      forcePathStyle: true,
      credentials: creds,
    });
    await client.send(new CreateBucketCommand({ Bucket: 'bench' }));
    const t = await measure(new S3Location({ bucket: 'bench', endpoint: s3.endpoint, credentials: creds }));
    const body = async (key: string) =>
      (await client.send(new GetObjectCommand({ Bucket: 'bench', Key: key }))).Body?.transformToByteArray();
    const raw = {
      put: await secs(() =>
        pool(SMALL, 8, (i) =>
          client.send(new PutObjectCommand({ Bucket: 'bench', Key: `raw/${i}`, Body: values[i] })),
        ),
      ),
      get: await secs(() => pool(SMALL, 8, (i) => body(`raw/${i}`))),
      bigPut: await secs(() =>
        client.send(new PutObjectCommand({ Bucket: 'bench', Key: 'raw/big', Body: big })),
      ),
      bigGet: await secs(() => body('raw/big')),
    };
    client.destroy();
    out.s3 = rows(t, raw);
    await s3.stop();
  }

  // SFTP and SCP: ssh2-sftp-client's own put/get (fastPut/fastGet for the big file), and OpenSSH's scp.
  {
    const sshd = await startSshd();
    const ssh = {
      port: sshd.port,
      username: sshd.username,
      privateKeyPath: sshd.privateKeyPath,
      hostKeyFingerprint: sshd.hostKeyFingerprint,
    };
    const tSftp = await measure(new SFTPLocation('127.0.0.1', `${sshd.root}/sftp`, ssh));
    const c = new SftpClient();
    await c.connect({
      host: '127.0.0.1',
      port: sshd.port,
      username: sshd.username,
      privateKey: readFileSync(sshd.privateKeyPath),
    });
    await c.mkdir(`${sshd.root}/raw`, true);
    const local = mkdtempSync(join(tmpdir(), 'bench-ssh-'));
    writeFileSync(join(local, 'big'), big);
    const rawSftp = {
      put: await secs(() => pool(SMALL, 8, (i) => c.put(values[i] as Buffer, `${sshd.root}/raw/${i}`))),
      get: await secs(() => pool(SMALL, 8, (i) => c.get(`${sshd.root}/raw/${i}`))),
      bigPut: await secs(() => c.fastPut(join(local, 'big'), `${sshd.root}/raw/big`)),
      bigGet: await secs(() => c.fastGet(`${sshd.root}/raw/big`, join(local, 'big-back'))),
    };
    await c.end();
    out.sftp = rows(tSftp, rawSftp);
    // SCP: every value is a few commands on the host, so fewer small values; OpenSSH's scp for the big file.
    const tScp = await measure(new SCPLocation('127.0.0.1', `${sshd.root}/scp`, ssh), undefined, 20);
    const scp = (args: string[]) =>
      execFileSync(binary('scp'), [...sshd.clientOptions, '-O', '-P', String(sshd.port), ...args]);
    const dest = `${sshd.username}@127.0.0.1:${sshd.root}/raw`;
    const rawScp = {
      get: Number.NaN,
      bigPut: await secs(async () => scp([join(local, 'big'), `${dest}/scp-big`])),
      bigGet: await secs(async () => scp([`${dest}/scp-big`, join(local, 'scp-back')])),
    };
    out.scp = rows(tScp, rawScp).filter((r) => r.label.startsWith('100'));
    console.log(
      `scp, 20 values of 1 KiB: ${(20 / (tScp.put ?? 1)).toFixed(1)} writes/s, ${(20 / tScp.get).toFixed(1)} reads/s`,
    );
    await sshd.stop();
  }

  // Nginx: undici GETs of the same files, seeded into a disk lake it serves.
  {
    const root = join(mkdtempSync(join(tmpdir(), 'bench-nginx-')), 'lake');
    const lake = new HashKeyStorage(new DiskLocation(root));
    const nginx = await startNginx(root);
    const t = await measure(new NginxLocation(nginx.url), (d) => lake.write(d));
    const keys = await Promise.all(values.map((v) => lake.write(v)));
    const bigKey = await lake.write(big);
    const get = async (key: string) =>
      (await request(`${nginx.url}${key.slice(0, 2)}/${key.slice(2)}`)).body.arrayBuffer();
    const raw = {
      get: await secs(() => pool(SMALL, 8, (i) => get(keys[i] as string))),
      bigGet: await secs(() => get(bigKey)),
    };
    out.nginx = rows(t, raw);
    await nginx.stop();
  }
  for (const [name, r] of Object.entries(out)) {
    console.log(`\n## ${name}`);
    for (const row of r) {
      console.log(
        `  ${row.label.padEnd(14)} tarn ${row.tarn.toFixed(0).padStart(7)} ${row.unit}   raw client ${row.raw.toFixed(0).padStart(7)} ${row.unit}   ratio raw/tarn ${(row.raw / row.tarn).toFixed(2)}x`,
      );
    }
  }
  return out;
}
