import {
  CreateBucketCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { available } from './index.js';
import { type S3, startS3 } from './services.js';

describe.runIf(available('s3'))('bed: S3 (MinIO)', () => {
  let s3: S3;
  beforeAll(async () => {
    s3 = await startS3();
  }, 120_000);
  afterAll(() => s3?.stop());

  it('round-trips an object with the AWS SDK', async () => {
    const client = new S3Client({
      endpoint: s3.endpoint,
      region: s3.region,
      forcePathStyle: true,
      credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    });
    await client.send(new CreateBucketCommand({ Bucket: 'bed' }));
    await client.send(new PutObjectCommand({ Bucket: 'bed', Key: '2c/f24dba', Body: 'hello' }));
    const got = await client.send(new GetObjectCommand({ Bucket: 'bed', Key: '2c/f24dba' }));
    expect(await got.Body?.transformToString()).toBe('hello');
    const listed = await client.send(new ListObjectsV2Command({ Bucket: 'bed' }));
    expect(listed.Contents?.map((o) => o.Key)).toEqual(['2c/f24dba']);
    client.destroy();
  });
});
