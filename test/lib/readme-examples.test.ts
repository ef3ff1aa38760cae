// Every example of the original Python tarn README, written in TypeScript, against real servers.
// Paths like /mount/hdd1/lake become folders under a temp dir; 'my-host' becomes the bed's server.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  DiskLocation,
  Fanout,
  HashKeyStorage,
  Level,
  Levels,
  Nginx,
  RedisLocation,
  S3,
  SCP,
  SFTP,
  Small,
} from '@tarnjs/tarn';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { available } from '../bed/index.js';
import {
  type Nginx as NginxServer,
  type Redis,
  type S3 as S3Server,
  type Sshd,
  startNginx,
  startRedis,
  startS3,
  startSshd,
} from '../bed/services.js';
import { pseudoRandom, sha256 } from '../helpers/data.js';
import { freshPath, tempDir } from '../helpers/tmp.js';
import { createBucket } from './location/s3/helpers.js';

const base = tempDir();
const mount = (name: string) => freshPath(base, name);
const servers = ['redis', 'sshd', 's3', 'nginx'] as const;

describe.runIf(servers.every((s) => available(s)))('the original README, in TypeScript', () => {
  let redis: Redis;
  let sshd: Sshd;
  let s3: S3Server;
  let web: NginxServer;
  let served: string;
  const saved = { ...process.env };

  beforeAll(async () => {
    served = mount('www');
    mkdirSync(served);
    [redis, sshd, s3] = await Promise.all([startRedis(), startSshd(), startS3()]);
    web = await startNginx(served, { format: 'json' });
    await Promise.all(['my-bucket', 'bucket1', 'bucket2'].map((b) => createBucket(s3, b)));
    // S3('my-storage-url', 'my-bucket') takes credentials from the standard AWS chain, as s3fs does.
    Object.assign(process.env, {
      AWS_ACCESS_KEY_ID: s3.accessKeyId,
      AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
    });
  }, 120_000);
  afterAll(async () => {
    process.env = saved;
    await Promise.all([redis, sshd, s3, web].map((s) => s?.stop()));
  });

  const ssh = () => ({
    port: sshd.port,
    username: sshd.username,
    privateKeyPath: sshd.privateKeyPath,
    knownHostsPath: sshd.knownHostsPath,
  });

  it('a disk lake: write a file, bytes and a stream; read back a path', async () => {
    const storage = new HashKeyStorage(mount('some-folder'));
    const file = join(base, 'file.png');
    writeFileSync(file, pseudoRandom('png', 5000));
    const key = await storage.write(file);
    expect(key).toBe(sha256(pseudoRandom('png', 5000)));
    const path = await storage.read(key, (value) => value.path);
    expect(path).toMatch(new RegExp(`/${key.slice(0, 2)}/${key.slice(2)}$`));
    expect(await storage.write(Buffer.from('my-bytes'))).toBe(sha256(Buffer.from('my-bytes')));
    // requests.get(url).raw in Python; the body of a fetch here, streamed straight into the lake.
    writeFileSync(join(served, 'page.html'), '<html>example</html>');
    const response = await fetch(`${web.url}page.html`);
    const fromWeb = await storage.write(response.body as ReadableStream<Uint8Array>);
    expect(await storage.read(fromWeb, (v) => v.text())).toBe('<html>example</html>');
  });

  it('S3, Redis, SFTP, SCP and Nginx locations', async () => {
    const data = Buffer.from('one value, five places');
    const locations = [
      new S3(s3.endpoint, 'my-bucket'),
      new RedisLocation(`127.0.0.1:${redis.port}`),
      new SFTP('127.0.0.1', `${sshd.root}/sftp-lake`, ssh()),
      new SCP('127.0.0.1', `${sshd.root}/scp-lake`, ssh()),
    ];
    for (const location of locations) {
      const storage = new HashKeyStorage(location);
      const key = await storage.write(data);
      expect(await storage.read(key, (v) => v.bytes())).toEqual(data);
      await storage.close();
    }
    // Nginx serves a lake read-only over HTTP.
    const lake = join(served, 'storage');
    const key = await new HashKeyStorage(lake).write(data);
    const storage = new HashKeyStorage(new Nginx(`${web.url}storage`));
    expect(await storage.read(key, (v) => v.bytes())).toEqual(data);
  });

  it('Fanout of disks, of S3 buckets, and of S3 then a disk', async () => {
    const [hdd1, hdd2] = [mount('hdd1'), mount('hdd2')];
    const disks = new HashKeyStorage(new Fanout(new DiskLocation(hdd1, { maxSize: 1 << 20 }), hdd2));
    const big = pseudoRandom('fills hdd1', 2 << 20);
    const key = await disks.write(big);
    expect(await new DiskLocation(hdd2).contains(key)).toBe(true);

    const buckets = new HashKeyStorage(
      new Fanout(new S3(s3.endpoint, 'bucket1'), new S3(s3.endpoint, 'bucket2')),
    );
    const inBucket = await buckets.write(Buffer.from('in a bucket'));
    expect(await new S3(s3.endpoint, 'bucket1').contains(inBucket)).toBe(true);
    await buckets.close();

    const mixed = new HashKeyStorage(new Fanout(new S3(s3.endpoint, 'bucket2'), mount('hdd1')));
    expect(await mixed.read(await mixed.write(Buffer.from('mixed')), (v) => v.text())).toBe('mixed');
    await mixed.close();
  });

  it('Levels: lazy migration, the lab SSD/HDD/NFS setup, and Small(Redis) on a disk', async () => {
    const [fresh, old] = [mount('new-hdd'), mount('old-hdd')];
    const key = await new HashKeyStorage(old).write(Buffer.from('old data'));
    const migrating = new HashKeyStorage(new Levels(fresh, old));
    expect(await migrating.read(key, (v) => v.text())).toBe('old data');
    expect(await new DiskLocation(fresh).contains(key)).toBe(true);

    const [ssd, hdd, nfs] = [mount('fast-ssd'), mount('slow-hdd'), mount('slower-nfs')];
    const lab = new HashKeyStorage(
      new Levels(new Level(ssd, { write: false }), new Level(hdd, { write: false }), nfs),
    );
    const labKey = await lab.write(Buffer.from('lab data'));
    expect(await new DiskLocation(ssd).contains(labKey)).toBe(false);
    await lab.read(labKey, (v) => v.text());
    expect(await new DiskLocation(ssd).contains(labKey)).toBe(true);

    const redisLevel = new RedisLocation({ url: redis.url, prefix: 'readme:' });
    const cached = new HashKeyStorage(
      new Levels(new Small(redisLevel, { maxSize: 100 * 1024 }), mount('hdd')),
    );
    const small = await cached.write(Buffer.from('small file'));
    expect(await redisLevel.contains(small)).toBe(true);
    await cached.close();
  });

  it('the "as crazy as you want" tree: Small(Redis), SSD, Fanout(HDDs, Levels(HDD3, old HDD)), NFS, S3, SFTP', async () => {
    const hdd3 = new DiskLocation(mount('hdd3'));
    const remote = new SFTP('127.0.0.1', `${sshd.root}/remote-folder`, ssh());
    const storage = new HashKeyStorage(
      new Levels(
        new Small(new RedisLocation({ url: redis.url, prefix: 'crazy:' }), { maxSize: 10 * 1024 ** 2 }),
        mount('fast-ssd'),
        new Fanout(
          mount('hdd1'),
          mount('hdd2'),
          hdd3,
          // nested locations are not a problem!
          new Levels(hdd3, mount('old-hdd')),
        ),
        mount('slower-nfs'),
        new S3(s3.endpoint, 'my-bucket'),
        // pull missing files over sftp when needed
        remote,
      ),
    );
    // A file only the remote host has is pulled and copied up the whole way.
    const data = pseudoRandom('on the remote host', 64 * 1024);
    const key = await new HashKeyStorage(remote).write(data);
    expect((await storage.read(key, (v) => v.bytes(), { verify: true })).equals(data)).toBe(true);
    const levels = (storage.location as Levels).levels.map((l) => l.location);
    for (const location of levels) expect(await location.contains(key)).toBe(true);
    // Small values are written to the first write level that accepts: the Redis on top.
    const small = await storage.write(Buffer.from('small'));
    expect(await (levels[0] as Small).contains(small)).toBe(true);
    // A value over 10 MiB is refused by Small(Redis) and lands on the SSD.
    const large = await storage.write(pseudoRandom('large', 11 << 20));
    expect(await (levels[0] as Small).contains(large)).toBe(false);
    expect(await (levels[1] as DiskLocation).contains(large)).toBe(true);
    await storage.close();
  });
});
