import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { ConfigError, HashKeyStorage, RemoteError, S3Location } from '@tarnjs/tarn';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { available } from '../../../bed/index.js';
import { type S3, startS3 } from '../../../bed/services.js';
import { sha256 } from '../../../helpers/data.js';
import { createBucket, rawClient } from './helpers.js';

describe.runIf(available('s3'))('S3 location', () => {
  let s3: S3;
  beforeAll(async () => {
    s3 = await startS3();
    await createBucket(s3, 'compat');
  }, 120_000);
  afterAll(() => s3?.stop());

  it('names objects as Python tarn does: <first 2 bytes as 4 hex>/<rest>', async () => {
    const storage = new HashKeyStorage(
      new S3Location({
        bucket: 'compat',
        endpoint: s3.endpoint,
        credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
      }),
    );
    const key = await storage.write(Buffer.from('hello'));
    const client = rawClient(s3);
    const listed = await client.send(new ListObjectsV2Command({ Bucket: 'compat' }));
    expect(listed.Contents?.map((o) => o.Key)).toEqual([`${key.slice(0, 4)}/${key.slice(4)}`]);
    client.destroy();
    await storage.close();
  });

  it('takes credentials from the standard AWS chain (environment), not only inline', async () => {
    const saved = { ...process.env };
    process.env.AWS_ACCESS_KEY_ID = s3.accessKeyId;
    process.env.AWS_SECRET_ACCESS_KEY = s3.secretAccessKey;
    try {
      const storage = new HashKeyStorage(new S3Location({ bucket: 'compat', endpoint: s3.endpoint }));
      expect(await storage.write(Buffer.from('from env'))).toBe(sha256('from env'));
      await storage.close();
    } finally {
      process.env = saved;
    }
  });

  it('wrong credentials and a down server give a RemoteError that names the server', async () => {
    const wrong = new S3Location({
      bucket: 'compat',
      endpoint: s3.endpoint,
      credentials: { accessKeyId: 'nobody', secretAccessKey: 'wrong-secret-key' },
    });
    const err = await wrong.contains(sha256('x')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RemoteError);
    expect((err as Error).message).toContain(s3.endpoint);
    await wrong.close();

    const down = new S3Location({
      bucket: 'compat',
      endpoint: 'http://127.0.0.1:9',
      connectTimeoutMs: 500,
      credentials: { accessKeyId: 'a', secretAccessKey: 'b' },
    });
    const err2 = await down.contains(sha256('x')).catch((e: unknown) => e);
    expect(err2).toBeInstanceOf(RemoteError);
    expect((err2 as Error).message).toContain('127.0.0.1:9');
    await down.close();
  });
});

describe('S3 location options', () => {
  it('refuses credentials in the endpoint, which every message prints, without echoing them', () => {
    const endpoint = 'http://key:hunter2@127.0.0.1:9000';
    for (const make of [
      () => new S3Location({ bucket: 'b', endpoint }),
      () => new S3Location(endpoint, 'b'), // the original tarn's form
    ]) {
      const error = thrown(make);
      expect(error).toBeInstanceOf(ConfigError);
      expect(error).toMatchObject({ code: 'TARN_CONFIG', path: ['endpoint'] });
      expect((error as Error).message).toMatch(/pass credentials/);
      expect((error as Error).message).not.toContain('hunter2');
    }
  });
});

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  throw new Error('did not throw');
}
