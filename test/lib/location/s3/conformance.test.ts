import { ListMultipartUploadsCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { S3Location } from '@tarnjs/tarn';
import { available } from '../../../bed/index.js';
import { startS3 } from '../../../bed/services.js';
import { conformance } from '../conformance.js';
import { createBucket, rawClient } from './helpers.js';

conformance(
  's3',
  async () => {
    const s3 = await startS3();
    await createBucket(s3, 'lake');
    const raw = rawClient(s3);
    const location = new S3Location({
      bucket: 'lake',
      prefix: 'tarn/',
      endpoint: s3.endpoint,
      credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
      partSize: 8 << 20,
    });
    return {
      location,
      // Every object of the bucket, and every multipart upload left open (as `upload:<name>`).
      objects: async () => {
        const names: string[] = [];
        let token: string | undefined;
        do {
          const page = await raw.send(new ListObjectsV2Command({ Bucket: 'lake', ContinuationToken: token }));
          for (const o of page.Contents ?? []) names.push(o.Key as string);
          token = page.NextContinuationToken;
        } while (token);
        const uploads = await raw.send(new ListMultipartUploadsCommand({ Bucket: 'lake' }));
        for (const u of uploads.Uploads ?? []) names.push(`upload:${u.Key}`);
        return names.sort();
      },
      server: s3,
      teardown: async () => {
        raw.destroy();
        await s3.stop();
      },
    };
  },
  { remote: true, enabled: available('s3') },
);
