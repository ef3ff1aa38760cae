// Every service of the bed, run locally or, for users with Docker, as containers (see provider()).
// The Docker provider is loaded only when used: testcontainers is heavy and unused on these machines.
import { provider } from './binaries.js';
import { type Kube, startKube as localKube } from './kube.js';
import { startNginx as localNginx, type Nginx } from './nginx.js';
import { startRedis as localRedis, type Redis } from './redis.js';
import { startS3 as localS3, type S3 } from './s3.js';
import { startSshd as localSshd, type Sshd } from './sshd.js';

export type { Kube, Nginx, Redis, S3, Sshd };

const docker = () => import('./docker.js');

export async function startRedis(dir?: string): Promise<Redis> {
  return provider('redis') === 'docker' ? (await docker()).dockerRedis() : localRedis(dir);
}

export async function startNginx(
  root: string,
  options: { format?: 'html' | 'json'; dir?: string } = {},
): Promise<Nginx> {
  return provider('nginx') === 'docker'
    ? (await docker()).dockerNginx(root, options)
    : localNginx(root, options);
}

export async function startSshd(dir?: string): Promise<Sshd> {
  return provider('sshd') === 'docker' ? (await docker()).dockerSshd() : localSshd(dir);
}

export async function startS3(dir?: string): Promise<S3> {
  return provider('s3') === 'docker' ? (await docker()).dockerS3() : localS3(dir);
}

export async function startKube(dir?: string): Promise<Kube> {
  return provider('kube') === 'docker' ? (await docker()).dockerKube() : localKube(dir);
}
