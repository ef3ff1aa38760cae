import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import type { S3 } from '../../../bed/services.js';

export function rawClient(s3: S3): S3Client {
  return new S3Client({
    endpoint: s3.endpoint,
    region: s3.region,
    forcePathStyle: true,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
  });
}

export async function createBucket(s3: S3, bucket: string): Promise<void> {
  const client = rawClient(s3);
  await client.send(new CreateBucketCommand({ Bucket: bucket }));
  client.destroy();
}
