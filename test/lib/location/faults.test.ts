import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import {
  AbortError,
  DiskLocation,
  HashKeyStorage,
  NginxLocation,
  RedisLocation,
  RemoteError,
  S3Location,
  SCPLocation,
  type SCPOptions,
  SFTPLocation,
} from '@tarnjs/tarn';
import { Redis as Client } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { available } from '../../bed/index.js';
import { startNginx, startRedis, startS3, startSshd } from '../../bed/services.js';
import { pseudoRandom, sha256 } from '../../helpers/data.js';
import { tempDir } from '../../helpers/tmp.js';
import { createBucket } from './s3/helpers.js';

const BIG = 160 << 20;

/**
 * Starts `work`, stops the server as soon as `uploading()` sees the upload under way on the server's
 * side, and returns what `work` ended with. Fails if the upload was never seen.
 */
async function stopDuring<T>(
  work: () => Promise<T>,
  uploading: () => boolean,
  stop: () => Promise<void>,
): Promise<T | unknown> {
  let settled = false;
  const running = work()
    .catch((e: unknown) => e)
    .finally(() => {
      settled = true;
    });
  while (!settled && !uploading()) await new Promise((r) => setTimeout(r, 10));
  expect(settled, 'the upload finished before it could be interrupted').toBe(false);
  await stop();
  return running;
}

/**
 * Reads `stream` until its first chunk, then waits until `stopped()` is called (the server is gone)
 * and reads on: the rest can only fail or end short, which the caller tells apart.
 */
function readPausedAfterFirstChunk(stream: AsyncIterable<unknown> | undefined) {
  let got = 0;
  let started: () => void = () => undefined;
  let stopped: () => void = () => undefined;
  const first = new Promise<void>((r) => {
    started = r;
  });
  const gone = new Promise<void>((r) => {
    stopped = r;
  });
  const reading = (async () => {
    for await (const c of stream ?? []) {
      if (got === 0) {
        started();
        await gone;
      }
      got += (c as Buffer).length;
    }
  })().catch((e: unknown) => e);
  // A stream that fails before its first chunk releases the waiter too.
  void reading.then(() => started());
  return { reading, started: first, stopped, got: () => got };
}

/** Whether a folder holds a non-empty file whose name starts with `prefix` (anywhere below it). */
function partialUnder(dir: string, prefix: string): boolean {
  try {
    return readdirSync(dir, { recursive: true, withFileTypes: true }).some(
      (e) => e.isFile() && e.name.startsWith(prefix) && statSync(join(e.parentPath, e.name)).size > 0,
    );
  } catch {
    return false;
  }
}

describe('a server that goes away', () => {
  it.runIf(available('redis'))('redis: stopped, a clear error naming the server', async () => {
    const redis = await startRedis();
    const location = new RedisLocation({ url: redis.url, connectTimeoutMs: 500, commandTimeoutMs: 1000 });
    const storage = new HashKeyStorage(location);
    const key = await storage.write(Buffer.from('before'));
    await redis.stop();
    const read = await storage.read(key).catch((e: unknown) => e);
    expect(read).toBeInstanceOf(RemoteError);
    expect((read as Error).message).toContain(redis.url);
    const write = await storage.write(Buffer.from('after')).catch((e: unknown) => e);
    expect(write).toBeInstanceOf(RemoteError);
    expect((write as Error).message).toContain(redis.url);
    await location.close();
  });

  it.runIf(available('redis'))(
    'redis: hung mid-write, the write fails in time and Redis never holds part of the value',
    async () => {
      const redis = await startRedis();
      const raw = new Client(redis.url);
      const location = new RedisLocation({ url: redis.url, prefix: 'hung:', commandTimeoutMs: 1000 });
      const storage = new HashKeyStorage(location);
      const before = await storage.write(Buffer.from('before'));
      const data = pseudoRandom('redis hung', 8 << 20);
      // Frozen: the bytes sit in the server's socket, unanswered, as with a host that hangs.
      redis.pause();
      const err = await storage.write(data).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RemoteError);
      expect((err as Error).message).toContain(redis.url);
      redis.resume();
      // Whatever the server ends up doing with the bytes it had, a key holds a whole value or none.
      expect(await raw.ping()).toBe('PONG');
      const held = await raw.keysBuffer('hung:*');
      for (const k of held) {
        const bytes = (await raw.getBuffer(k)) as Buffer;
        expect([before, sha256(data)]).toContain(k.subarray(5).toString('hex'));
        expect(sha256(bytes)).toBe(k.subarray(5).toString('hex'));
      }
      raw.disconnect();
      await location.close();
      await redis.stop();
    },
  );

  it.runIf(available('s3'))(
    's3: stopped mid-upload and mid-download, it fails loudly and leaves no object',
    async () => {
      const s3 = await startS3();
      await createBucket(s3, 'faults');
      const opts = {
        bucket: 'faults',
        endpoint: s3.endpoint,
        credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
        connectTimeoutMs: 1000,
        requestTimeoutMs: 5000,
      };
      const storage = new HashKeyStorage(new S3Location(opts));
      const small = await storage.write(pseudoRandom('s3 fault read', 24 << 20));
      // mid-read
      const location = new S3Location(opts);
      const value = await location.read(small);
      const { reading, started, stopped, got } = readPausedAfterFirstChunk(value?.stream());
      await started;
      // mid-upload, on a second connection: MinIO keeps the parts of a multipart upload under .minio.sys/multipart
      const data = randomBytes(BIG);
      const multipart = join(s3.log, '..', 'data', '.minio.sys', 'multipart');
      const err = await stopDuring(
        () => storage.write(data),
        () => partialUnder(multipart, 'part.'),
        () => s3.stop(),
      );
      stopped();
      expect(await reading).toBeInstanceOf(Error);
      expect(got()).toBeLessThan(24 << 20);
      expect(err).toBeInstanceOf(RemoteError);
      expect((err as Error).message).toContain(s3.endpoint);
      // MinIO keeps finished objects as folders named after them: the big one never appeared.
      const key = sha256(data);
      expect(existsSync(join(s3.log, '..', 'data', 'faults', `${key.slice(0, 4)}`, key.slice(4)))).toBe(
        false,
      );
      await location.close();
    },
    120_000,
  );

  for (const [name, Kind] of [
    ['sftp', SFTPLocation],
    ['scp', SCPLocation],
  ] as const) {
    it.runIf(available('sshd'))(
      `${name}: a host crash mid-upload fails loudly and leaves no blob`,
      async () => {
        const sshd = await startSshd();
        const root = `${sshd.root}/lake`;
        // A short transfer timeout: the test ends quickly even if the crash is never reported.
        const opts: SCPOptions = {
          port: sshd.port,
          username: sshd.username,
          privateKeyPath: sshd.privateKeyPath,
          hostKeyFingerprint: sshd.hostKeyFingerprint,
          transferTimeoutMs: 3000,
        };
        const storage = new HashKeyStorage(new Kind('127.0.0.1', root, opts));
        await storage.write(Buffer.from('lake exists'));
        const data = randomBytes(BIG);
        // The upload lands in <root>/.tmp/stage-… on the host until it is published.
        const err = await stopDuring(
          () => storage.write(data),
          () => partialUnder(join(root, '.tmp'), 'stage-'),
          () => sshd.crash(),
        );
        expect(err).toBeInstanceOf(RemoteError);
        expect((err as Error).message).toContain(`127.0.0.1:${sshd.port}`);
        const key = sha256(data);
        // Only the temp file under .tmp (swept later, like a local lake's) may remain.
        expect(existsSync(join(root, key.slice(0, 2), key.slice(2)))).toBe(false);
        await storage.close();
      },
      120_000,
    );
  }

  it.runIf(available('nginx'))(
    'nginx: stopped mid-read, the stream fails instead of ending short',
    async () => {
      const root = `${tempDir()}/lake`;
      const SIZE = BIG;
      const key = await new HashKeyStorage(new DiskLocation(root)).write(randomBytes(SIZE));
      const nginx = await startNginx(root);
      const location = new NginxLocation({ url: nginx.url, retries: 0 });
      const value = await location.read(key);
      const { reading, started, stopped, got } = readPausedAfterFirstChunk(value?.stream());
      await started;
      await nginx.stop();
      stopped();
      expect(await reading).toBeInstanceOf(Error);
      expect(got()).toBeLessThan(BIG);
      await location.close();
    },
  );
});

describe('an aborted transfer', () => {
  for (const [name, Kind] of [
    ['sftp', SFTPLocation],
    ['scp', SCPLocation],
  ] as const) {
    it.runIf(available('sshd'))(
      `${name}: stops mid-upload with AbortError and stores nothing`,
      async () => {
        const sshd = await startSshd();
        const root = `${sshd.root}/lake`;
        const storage = new HashKeyStorage(
          new Kind('127.0.0.1', root, {
            port: sshd.port,
            username: sshd.username,
            privateKeyPath: sshd.privateKeyPath,
            hostKeyFingerprint: sshd.hostKeyFingerprint,
          }),
        );
        await storage.write(Buffer.from('lake exists'));
        const data = randomBytes(BIG);
        const controller = new AbortController();
        const err = await stopDuring(
          () => storage.write(data, { signal: controller.signal }),
          () => partialUnder(join(root, '.tmp'), 'stage-'),
          async () => controller.abort(new Error('user cancelled')),
        );
        expect(err).toBeInstanceOf(AbortError);
        expect(existsSync(join(root, sha256(data).slice(0, 2), sha256(data).slice(2)))).toBe(false);
        // The location stays usable after the abort.
        expect(await storage.write(Buffer.from('after abort'))).toBe(sha256('after abort'));
        await storage.close();
        await sshd.stop();
      },
      60_000,
    );
  }
});
