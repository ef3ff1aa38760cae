import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { HashKeyStorage, SFTPLocation } from '@tarnjs/tarn';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { available } from '../../bed/index.js';
import { type Redis, type S3, type Sshd, startRedis, startS3, startSshd } from '../../bed/services.js';
import { tarn } from '../../helpers/spawn.js';
import { freshPath, tempDir } from '../../helpers/tmp.js';
import { createBucket } from '../location/s3/helpers.js';

const base = tempDir();

/** A local port with nothing listening on it. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  await new Promise((r) => server.close(r));
  return port;
}

describe('tarn describe', () => {
  it('prints the tree with flags, and reports a missing lake without creating it', async () => {
    const dir = freshPath(base, 'describe');
    mkdirSync(dir);
    expect((await tarn(['init', join(dir, 'ssd'), '--max-size', '1G'])).code).toBe(0);
    expect((await tarn(['init', join(dir, 'hdd')])).code).toBe(0);
    const cfg = join(dir, 'tarn.yaml');
    writeFileSync(
      cfg,
      [
        'locations:',
        '  hdd: hdd',
        'location:',
        '  kind: levels',
        '  levels:',
        '    - { location: ssd, replicate: false, touch: true, name: fast }',
        '    - kind: small',
        '      maxSize: 1MiB',
        '      location: { ref: hdd }',
        '    - [{ ref: hdd }]',
        '',
      ].join('\n'),
    );
    const r = await tarn(['describe', '--storage', cfg]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.split('\n')).toEqual([
      'levels',
      `  fast: disk ${join(dir, 'ssd')} [write, no replicate, touch, levels 1,-1, max 953.7 MiB]  reachable`,
      '  1: small [write, replicate, max 1.00 MiB]',
      `    disk ${join(dir, 'hdd')} [levels 1,-1]  reachable`,
      '  2: fanout [write, replicate]',
      `    disk ${join(dir, 'hdd')} [levels 1,-1]  reachable`,
      '',
    ]);

    writeFileSync(cfg, 'location: [hdd, missing]\n');
    const missing = await tarn(['describe', '-s', cfg]);
    expect(missing.code).toBe(1);
    expect(missing.stdout).toContain(
      `disk ${join(dir, 'missing')}  unreachable: no lake at ${join(dir, 'missing')}`,
    );
    const ls = await tarn(['describe', '-s', join(dir, 'nowhere')]);
    expect(ls.code).toBe(1);
    const { existsSync } = await import('node:fs');
    expect(existsSync(join(dir, 'missing'))).toBe(false);
    expect(existsSync(join(dir, 'nowhere'))).toBe(false);
  });

  it('reports an unreachable Redis and exits nonzero, also as JSON', async () => {
    const dir = freshPath(base, 'describe');
    mkdirSync(dir);
    await tarn(['init', join(dir, 'lake')]);
    const port = await closedPort();
    const cfg = join(dir, 'tarn.yaml');
    writeFileSync(
      cfg,
      `location:\n  kind: levels\n  levels:\n    - { kind: redis, url: 'redis://127.0.0.1:${port}' }\n    - lake\n`,
    );
    const started = Date.now();
    const r = await tarn(['describe', '--storage', cfg]);
    expect(Date.now() - started).toBeLessThan(15_000);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(
      new RegExp(`0: redis redis://127.0.0.1:${port} \\[write, replicate\\]  unreachable: `),
    );
    expect(r.stdout).toMatch(/1: disk .*lake .* reachable/);

    const json = await tarn(['describe', '--storage', cfg, '--json']);
    expect(json.code).toBe(1);
    const d = JSON.parse(json.stdout);
    expect(d).toMatchObject({
      storage: cfg,
      algorithm: 'sha256',
      reachable: false,
      location: {
        kind: 'levels',
        children: [
          {
            kind: 'redis',
            reachable: false,
            level: { index: 0, write: true, replicate: true, touch: false },
          },
          { kind: 'disk', target: join(dir, 'lake'), reachable: true, flags: { levels: [1, -1] } },
        ],
      },
    });
    expect(typeof d.location.children[0].error).toBe('string');
  });

  it('fails like every other command when a lake disagrees with the config on the digest', async () => {
    const dir = freshPath(base, 'describe');
    mkdirSync(dir);
    expect((await tarn(['init', join(dir, 'lake'), '--algorithm', 'sha512'])).code).toBe(0);
    const cfg = join(dir, 'tarn.yaml');
    writeFileSync(cfg, 'algorithm: sha256\nlocation: lake\n');
    const d = await tarn(['describe', '--storage', cfg]);
    expect(d.code).toBe(6);
    expect(d.stderr).toMatch(/records sha512/);
    expect((await tarn(['ls', '--storage', cfg])).code).toBe(6);
  });

  it('fails with exit 6 on an invalid config, naming the field', async () => {
    const cfg = join(base, 'bad.yaml');
    writeFileSync(cfg, 'location:\n  kind: levels\n  levels: [{ location: a, wirte: true }]\n');
    const r = await tarn(['describe', '-s', cfg]);
    expect(r.code).toBe(6);
    expect(r.stderr).toMatch(/location\.levels\.0: Unrecognized key: "wirte"/);
  });
});

describe.runIf((['redis', 'sshd', 's3'] as const).every((s) => available(s)))(
  'a config tree on real servers',
  () => {
    let redis: Redis;
    let sshd: Sshd;
    let s3: S3;
    beforeAll(async () => {
      [redis, sshd, s3] = await Promise.all([startRedis(), startSshd(), startS3()]);
      await createBucket(s3, 'my-bucket');
    }, 120_000);
    afterAll(() => Promise.all([redis, sshd, s3].map((s) => s?.stop())));

    it('the crazy tree as YAML: secrets by env and file, put, copy-on-read through the CLI, describe', async () => {
      const dir = freshPath(base, 'crazy');
      mkdirSync(dir);
      writeFileSync(join(dir, 's3-secret'), `${s3.secretAccessKey}\n`);
      const cfg = join(dir, 'tarn.yaml');
      writeFileSync(
        cfg,
        `locations:
  hdd3: ./hdd3
location:
  kind: levels
  levels:
    - { kind: small, maxSize: 10MiB, location: { kind: redis, url: '${redis.url}', prefix: 'cli:' } }
    - ./fast-ssd
    - [./hdd1, ./hdd2, { ref: hdd3 }, { kind: levels, levels: [{ ref: hdd3 }, ./old-hdd] }]
    - ./slower-nfs
    - kind: s3
      bucket: my-bucket
      endpoint: ${s3.endpoint}
      credentials: { accessKeyId: { env: TEST_S3_KEY }, secretAccessKey: { file: s3-secret } }
    - kind: sftp
      host: 127.0.0.1
      port: ${sshd.port}
      username: ${sshd.username}
      root: ${sshd.root}/cli-remote
      privateKeyPath: ${sshd.privateKeyPath}
      knownHostsPath: ${sshd.knownHostsPath}
`,
      );
      const env = { TEST_S3_KEY: s3.accessKeyId };
      // A value only the remote host has: pulled through the whole tree by `tarn cat`.
      const remote = new HashKeyStorage(
        new SFTPLocation('127.0.0.1', `${sshd.root}/cli-remote`, {
          port: sshd.port,
          username: sshd.username,
          privateKeyPath: sshd.privateKeyPath,
          knownHostsPath: sshd.knownHostsPath,
        }),
      );
      const key = await remote.write(Buffer.from('only on the remote host'));
      await remote.close();
      const cat = await tarn(['--storage', cfg, 'cat', '--verify', key], { env });
      // (stderr may carry the AWS SDK's notice about Node 20; nothing of ours.)
      expect(cat.stderr).not.toMatch(/^tarn:/m);
      expect(cat.code).toBe(0);
      expect(cat.stdout).toBe('only on the remote host');
      for (const lake of ['fast-ssd', 'hdd1', 'slower-nfs'])
        expect((await tarn(['--storage', join(dir, lake), 'has', key])).code).toBe(0);

      const d = await tarn(['describe', '--storage', cfg], { env });
      expect(d.code).toBe(0);
      expect(d.stdout.match(/ reachable$/gm)).toHaveLength(10);
      expect(d.stdout).toMatch(/^levels$/m);
      expect(d.stdout).toMatch(/0: small \[write, replicate, max 10.0 MiB\]/);

      // A secret that is not there is a config error naming the field.
      const missing = await tarn(['--storage', cfg, 'has', key], { env: { TEST_S3_KEY: '' } });
      expect(missing.code).toBe(6);
      expect(missing.stderr).toMatch(/location\.levels\.4\.credentials\.accessKeyId/);
    });
  },
);
