// The same services as containers, for users who have a Docker engine (TARN_BED=docker, or
// automatically when the local programs are missing and Docker is reachable). These machines have no
// Docker engine, so this provider is type-checked here but exercised only where Docker runs.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GenericContainer, type StartedTestContainer, Wait } from 'testcontainers';
import { binary } from './binaries.js';
import type { Kube } from './kube.js';
import type { Nginx } from './nginx.js';
import type { Redis } from './redis.js';
import type { S3 } from './s3.js';
import { clientOptions, type Sshd } from './sshd.js';

const IMAGES = {
  redis: 'redis:7-alpine',
  nginx: 'nginx:1-alpine',
  minio: 'minio/minio:latest',
  sshd: 'lscr.io/linuxserver/openssh-server:latest',
};

function asService(name: string, container: StartedTestContainer, dir: string) {
  return {
    name,
    log: `docker logs ${container.getId()}`,
    dir,
    stop: async () => void (await container.stop()),
    pause: () => void execFileSync('docker', ['pause', container.getId()]),
    resume: () => void execFileSync('docker', ['unpause', container.getId()]),
  };
}

export async function dockerRedis(): Promise<Redis> {
  const c = await new GenericContainer(IMAGES.redis)
    .withExposedPorts(6379)
    .withWaitStrategy(Wait.forLogMessage(/Ready to accept connections/))
    .start();
  const port = c.getMappedPort(6379);
  return { ...asService('redis', c, ''), port, url: `redis://${c.getHost()}:${port}` };
}

export async function dockerNginx(root: string, options: { format?: 'html' | 'json' } = {}): Promise<Nginx> {
  const conf = `server { listen 80; root /lake; location / { autoindex on; autoindex_format ${options.format ?? 'json'}; } }`;
  const c = await new GenericContainer(IMAGES.nginx)
    .withBindMounts([{ source: root, target: '/lake', mode: 'ro' }])
    .withCopyContentToContainer([{ content: conf, target: '/etc/nginx/conf.d/default.conf' }])
    .withExposedPorts(80)
    .withWaitStrategy(Wait.forHttp('/', 80))
    .start();
  const port = c.getMappedPort(80);
  return { ...asService('nginx', c, ''), port, url: `http://${c.getHost()}:${port}/` };
}

export async function dockerS3(): Promise<S3> {
  const accessKeyId = 'tarn-bed';
  const secretAccessKey = randomBytes(18).toString('base64url');
  const c = await new GenericContainer(IMAGES.minio)
    .withCommand(['server', '/data'])
    .withEnvironment({ MINIO_ROOT_USER: accessKeyId, MINIO_ROOT_PASSWORD: secretAccessKey })
    .withExposedPorts(9000)
    .withWaitStrategy(Wait.forHttp('/minio/health/ready', 9000))
    .start();
  const endpoint = `http://${c.getHost()}:${c.getMappedPort(9000)}`;
  return { ...asService('minio', c, ''), endpoint, region: 'us-east-1', accessKeyId, secretAccessKey };
}

export async function dockerSshd(): Promise<Sshd> {
  const dir = mkdtempSync(join(tmpdir(), 'bed-sshd-docker-'));
  const userKey = join(dir, 'client_ed25519');
  execFileSync(binary('ssh-keygen'), ['-q', '-t', 'ed25519', '-N', '', '-f', userKey]);
  const c = await new GenericContainer(IMAGES.sshd)
    .withEnvironment({ PUBLIC_KEY: readFileSync(`${userKey}.pub`, 'utf8').trim(), USER_NAME: 'tarn' })
    .withExposedPorts(2222)
    .withWaitStrategy(Wait.forListeningPorts())
    .start();
  const port = c.getMappedPort(2222);
  const hostKey = (await c.exec(['cat', '/config/ssh_host_keys/ssh_host_ed25519_key.pub'])).output.trim();
  const [type, key] = hostKey.split(' ');
  const knownHosts = join(dir, 'known_hosts');
  writeFileSync(knownHosts, `[${c.getHost()}]:${port} ${type} ${key}\n`);
  writeFileSync(join(dir, 'host.pub'), `${hostKey}\n`);
  const fingerprint = execFileSync(binary('ssh-keygen'), ['-l', '-E', 'sha256', '-f', join(dir, 'host.pub')])
    .toString()
    .split(' ')[1] as string;
  await c.exec(['mkdir', '-p', '/config/remote']);
  await c.exec(['chown', 'tarn', '/config/remote']);
  return {
    ...asService('sshd', c, dir),
    crash: async () => void (await c.stop({ timeout: 0 })),
    host: '127.0.0.1',
    port,
    username: 'tarn',
    privateKeyPath: userKey,
    knownHostsPath: knownHosts,
    hostKeyFingerprint: fingerprint,
    root: '/config/remote',
    clientOptions: clientOptions(userKey, knownHosts),
  };
}

/** A kind cluster (scripts/kind.sh) instead of the local control plane. */
export async function dockerKube(): Promise<Kube> {
  const script = fileURLToPath(new URL('../../scripts/kind.sh', import.meta.url));
  const kubeconfigPath = execFileSync('bash', [script, 'up']).toString().trim();
  const text = readFileSync(kubeconfigPath, 'utf8');
  const server = /server: (\S+)/.exec(text)?.[1] ?? '';
  return {
    name: 'kube',
    log: 'kind export logs',
    stop: async () => void execFileSync('bash', [script, 'down']),
    pause: () => void execFileSync('docker', ['pause', 'tarn-bed-control-plane']),
    resume: () => void execFileSync('docker', ['unpause', 'tarn-bed-control-plane']),
    server,
    kubeconfigPath,
    token: '',
    caPath: '',
  };
}
