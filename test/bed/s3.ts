import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { binary, freePort, httpReady, type Service, startService } from './index.js';

export interface S3 extends Service {
  readonly endpoint: string;
  readonly region: string;
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
}

/**
 * A MinIO server, built from the Go module proxy (scripts/build-go-tools.sh), on a free loopback
 * port with a throwaway data folder and random root credentials. Path-style addressing.
 */
export async function startS3(dir = mkdtempSync(join(tmpdir(), 'bed-s3-'))): Promise<S3> {
  const port = await freePort();
  const consolePort = await freePort();
  const data = join(dir, 'data');
  mkdirSync(data);
  const accessKeyId = 'tarn-bed';
  const secretAccessKey = randomBytes(18).toString('base64url');
  const command = [
    binary('minio'),
    'server',
    data,
    '--address',
    `127.0.0.1:${port}`,
    '--console-address',
    `127.0.0.1:${consolePort}`,
    '--quiet',
  ];
  const endpoint = `http://127.0.0.1:${port}`;
  const service = await startService({
    name: 'minio',
    command,
    dir,
    env: {
      MINIO_ROOT_USER: accessKeyId,
      MINIO_ROOT_PASSWORD: secretAccessKey,
      MINIO_BROWSER: 'off',
      MINIO_UPDATE: 'off',
      HOME: dir, // MinIO keeps its certs folder under ~/.minio
    },
    ready: () => httpReady(`${endpoint}/minio/health/ready`),
  });
  return { ...service, endpoint, region: 'us-east-1', accessKeyId, secretAccessKey };
}
