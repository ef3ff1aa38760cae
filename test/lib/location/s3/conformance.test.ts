import { S3Location } from '@tarnjs/tarn';
import { available } from '../../../bed/index.js';
import { startS3 } from '../../../bed/services.js';
import { conformance } from '../conformance.js';
import { createBucket } from './helpers.js';

if (available('s3')) {
  conformance('s3', async () => {
    const s3 = await startS3();
    await createBucket(s3, 'lake');
    const location = new S3Location({
      bucket: 'lake',
      prefix: 'tarn/',
      endpoint: s3.endpoint,
      credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
      partSize: 8 << 20,
    });
    return { location, teardown: () => s3.stop() };
  });
}
