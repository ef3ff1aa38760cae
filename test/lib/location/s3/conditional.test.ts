import {
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectVersionsCommand,
  PutBucketVersioningCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { AbortError, HashKeyStorage, S3Location, type S3LocationOptions } from '@tarnjs/tarn';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { available } from '../../../bed/index.js';
import { type S3, startS3 } from '../../../bed/services.js';
import { pseudoRandom, sha256 } from '../../../helpers/data.js';
import { createBucket, rawClient } from './helpers.js';
import { objectRequests, type S3Proxy, startS3Proxy } from './proxy.js';

const BUCKET = 'conditional';

describe.runIf(available('s3'))('S3 writes: conditional PutObject (If-None-Match: *)', () => {
  let s3: S3;
  let proxy: S3Proxy;
  let raw: S3Client;
  const open: S3Location[] = [];
  /** A location that talks to MinIO through the recording proxy. */
  const location = (options: Partial<S3LocationOptions> = {}) => {
    const made = new S3Location({
      bucket: BUCKET,
      endpoint: proxy.endpoint,
      credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
      ...options,
    });
    open.push(made);
    return made;
  };
  const objectKey = (key: string, prefix = '') => `${prefix}${key.slice(0, 4)}/${key.slice(4)}`;
  const requests = () => objectRequests(proxy.seen.splice(0), BUCKET);
  const versions = async (key: string, prefix = '') =>
    (await raw.send(new ListObjectVersionsCommand({ Bucket: BUCKET, Prefix: objectKey(key, prefix) })))
      .Versions ?? [];
  const pendingUploads = async () =>
    (await raw.send(new ListMultipartUploadsCommand({ Bucket: BUCKET }))).Uploads ?? [];
  const stored = async (key: string, prefix = '') =>
    raw.send(new HeadObjectCommand({ Bucket: BUCKET, Key: objectKey(key, prefix) })).then(
      () => true,
      () => false,
    );

  beforeAll(async () => {
    s3 = await startS3();
    await createBucket(s3, BUCKET);
    raw = rawClient(s3);
    // Versioned: a second upload of a key would show as a second version, however equal its bytes.
    await raw.send(
      new PutBucketVersioningCommand({ Bucket: BUCKET, VersioningConfiguration: { Status: 'Enabled' } }),
    );
    proxy = await startS3Proxy(s3.endpoint);
  }, 120_000);
  afterAll(async () => {
    await Promise.all(open.map((l) => l.close()));
    raw?.destroy();
    await proxy?.stop();
    await s3?.stop();
  });
  beforeEach(() => {
    proxy.mode = 'pass';
    proxy.holdPutsMs = 0;
    proxy.conflicts = 0;
    proxy.seen.length = 0;
  });

  it('a small value is one conditional PUT, no HEAD; written again it is `existed`, and the object is not replaced', async () => {
    const storage = new HashKeyStorage(location({ prefix: 'once/' }));
    const data = pseudoRandom('conditional once', 1024);
    expect(await storage.put(data)).toMatchObject({ status: 'stored' });
    expect(requests()).toEqual(['PUT 200 if-none-match:*']);
    const again = await storage.put(data);
    expect(again).toMatchObject({ key: sha256(data), status: 'existed' });
    // MinIO refused the second upload before writing anything: still one version of the object.
    expect(requests()).toEqual(['PUT 412 if-none-match:*']);
    expect(await versions(again.key, 'once/')).toHaveLength(1);
    const body = await raw.send(new GetObjectCommand({ Bucket: BUCKET, Key: objectKey(again.key, 'once/') }));
    expect(Buffer.from((await body.Body?.transformToByteArray()) ?? []).equals(data)).toBe(true);
  });

  it('a value over 256 KiB is asked about first (HEAD), so an existing one is never uploaded again', async () => {
    const storage = new HashKeyStorage(location({ prefix: 'medium/' }));
    const data = pseudoRandom('conditional medium', 1 << 20);
    expect(await storage.put(data)).toMatchObject({ status: 'stored' });
    expect(requests()).toEqual(['HEAD 404', 'PUT 200 if-none-match:*']);
    expect(await storage.put(data)).toMatchObject({ status: 'existed' });
    expect(requests()).toEqual(['HEAD 200']);
  });

  it('a server that refuses the header (501 NotImplemented) is found out once: HEAD then a plain PUT, then and after', async () => {
    proxy.mode = 'refuse';
    const storage = new HashKeyStorage(location({ prefix: 'refused/' }));
    const first = pseudoRandom('refused first', 1024);
    expect(await storage.put(first)).toMatchObject({ status: 'stored' });
    const seen = requests();
    // The SDK may retry a 5xx; every conditional attempt was refused, then the write went on without it.
    const refused = seen.filter((r) => r === 'PUT 501 if-none-match:*');
    expect(refused.length).toBeGreaterThanOrEqual(1);
    expect(seen.slice(refused.length)).toEqual(['HEAD 404', 'PUT 200']);
    // Decided: no later write sends the header.
    const second = pseudoRandom('refused second', 1024);
    expect(await storage.put(second)).toMatchObject({ status: 'stored' });
    expect(requests()).toEqual(['HEAD 404', 'PUT 200']);
    expect(await storage.put(first)).toMatchObject({ status: 'existed' });
    expect(requests()).toEqual(['HEAD 200']);
    expect(await stored(sha256(first), 'refused/')).toBe(true);
  });

  it('a multipart completion refused (501) aborts that upload and writes the value again without the header', async () => {
    const storage = new HashKeyStorage(location({ prefix: 'refused-mp/', partSize: 5 << 20 }));
    // Learnt from a small write: this server honours the condition, so completions carry it.
    await storage.put(pseudoRandom('learn refused-mp', 100));
    proxy.mode = 'refuse';
    proxy.seen.length = 0;
    const data = pseudoRandom('refused multipart', 11 << 20);
    expect(await storage.put(data)).toMatchObject({ status: 'stored' });
    const completions = proxy.seen
      .filter((s) => s.method === 'POST' && s.query.startsWith('uploadId='))
      .map((s) => `${s.status}${s.ifNoneMatch ? ' if-none-match' : ''}`);
    expect(completions.at(-1)).toBe('200');
    expect(completions.slice(0, -1).every((c) => c === '501 if-none-match')).toBe(true);
    expect(await pendingUploads()).toEqual([]);
    expect(await versions(sha256(data), 'refused-mp/')).toHaveLength(1);
  });

  it('a 409 ConditionalRequestConflict (a racing conditional write, on AWS) is retried until the race is decided', async () => {
    const storage = new HashKeyStorage(location({ prefix: 'conflict/' }));
    proxy.conflicts = 2;
    const data = pseudoRandom('conditional conflict', 1024);
    expect(await storage.put(data)).toMatchObject({ status: 'stored' });
    expect(requests()).toEqual([
      'PUT 409 if-none-match:*',
      'PUT 409 if-none-match:*',
      'PUT 200 if-none-match:*',
    ]);
  });

  it('conditionalWrites: false writes HEAD then a plain PUT (for servers that ignore the header)', async () => {
    const storage = new HashKeyStorage(location({ prefix: 'off/', conditionalWrites: false }));
    const data = pseudoRandom('conditional off', 1024);
    expect(await storage.put(data)).toMatchObject({ status: 'stored' });
    expect(requests()).toEqual(['HEAD 404', 'PUT 200']);
    expect(await storage.put(data)).toMatchObject({ status: 'existed' });
    expect(requests()).toEqual(['HEAD 200']);
  });

  it.each([
    ['small (one conditional PUT)', 1024],
    ['medium (HEAD, then a conditional PUT)', 1 << 20],
  ])(
    'writers racing on one %s key: one stores, the others find it existed; one version',
    async (_label, size) => {
      const data = pseudoRandom(`race ${size}`, size);
      // Independent writers, as separate processes would be: a location (and a connection pool) each.
      const writers = Array.from({ length: 6 }, () => new HashKeyStorage(location({ prefix: 'race/' })));
      const results = await Promise.all(writers.map((w) => w.put(data)));
      expect(results.map((r) => r.status).sort()).toEqual([
        'existed',
        'existed',
        'existed',
        'existed',
        'existed',
        'stored',
      ]);
      expect(await versions(sha256(data), 'race/')).toHaveLength(1);
    },
  );

  it('writers racing on one multipart key: the completion is conditional too, and no upload is left pending', async () => {
    const options = { prefix: 'race-mp/', partSize: 5 << 20 };
    const writers = Array.from({ length: 3 }, () => new HashKeyStorage(location(options)));
    // Each writer learns first that the server honours the condition (a small write).
    await Promise.all(writers.map((w, i) => w.put(pseudoRandom(`learn ${i}`, 100))));
    proxy.seen.length = 0;
    const data = pseudoRandom('race multipart', 11 << 20);
    const results = await Promise.all(writers.map((w) => w.put(data)));
    expect(results.map((r) => r.status).sort()).toEqual(['existed', 'existed', 'stored']);
    const completions = proxy.seen.filter((s) => s.method === 'POST' && s.query.startsWith('uploadId='));
    // Each writer that got past the HEAD completed conditionally: every answer is a 200 or a 412.
    for (const c of completions) {
      expect(c.ifNoneMatch).toBe('*');
      expect([200, 412]).toContain(c.status);
    }
    expect(await versions(sha256(data), 'race-mp/')).toHaveLength(1);
    expect(await pendingUploads()).toEqual([]);
  });

  it('an abort in the middle of a small PUT rejects with AbortError and stores nothing', async () => {
    proxy.holdPutsMs = 1500;
    const storage = new HashKeyStorage(location({ prefix: 'abort/' }));
    const data = pseudoRandom('abort small', 1024);
    const controller = new AbortController();
    const writing = storage.put(data, { signal: controller.signal }).catch((e: unknown) => e);
    setTimeout(() => controller.abort(new Error('user cancelled')), 200);
    expect(await writing).toBeInstanceOf(AbortError);
    // The proxy held the request until the client had gone, and dropped it: nothing reached MinIO.
    await new Promise((r) => setTimeout(r, 1600));
    expect(await stored(sha256(data), 'abort/')).toBe(false);
    proxy.holdPutsMs = 0;
    expect(await storage.put(data)).toMatchObject({ status: 'stored' });
  });

  it('an abort in the middle of a multipart upload cancels its parts and leaves no object and no pending upload', async () => {
    const storage = new HashKeyStorage(location({ prefix: 'abort-mp/', partSize: 5 << 20 }));
    const data = pseudoRandom('abort multipart', 40 << 20);
    const controller = new AbortController();
    const writing = storage.put(data, { signal: controller.signal }).catch((e: unknown) => e);
    // Aborted once the first part has reached the server.
    while (!proxy.seen.some((s) => s.query.includes('partNumber=1')))
      await new Promise((r) => setTimeout(r, 5));
    controller.abort(new Error('user cancelled'));
    expect(await writing).toBeInstanceOf(AbortError);
    // The write rejected only after the upload was aborted on the server: nothing to wait for.
    expect(await pendingUploads()).toEqual([]);
    expect(await stored(sha256(data), 'abort-mp/')).toBe(false);
    expect(proxy.seen.filter((s) => s.method === 'DELETE' && s.query.startsWith('uploadId='))).toHaveLength(
      1,
    );
    expect(proxy.seen.filter((s) => s.query.includes('partNumber=')).length).toBeLessThan(8);
  });
});
