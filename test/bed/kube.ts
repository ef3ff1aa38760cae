import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { binary, freePort, httpReady, type Service, startService } from './index.js';

export interface Kube extends Service {
  /** https://127.0.0.1:<port> */
  readonly server: string;
  /** A kubeconfig for a cluster admin (group system:masters), with the server's CA pinned. */
  readonly kubeconfigPath: string;
  readonly token: string;
  readonly caPath: string;
}

/**
 * A kubeconfig for one cluster and a bearer token: the CA by path, or inline (`caData`, base64)
 * for a process that cannot see the bed's files (a container).
 */
export function kubeconfigYaml(o: {
  server: string;
  token: string;
  caPath?: string;
  caData?: string;
}): string {
  const ca =
    o.caData !== undefined
      ? `certificate-authority-data: "${o.caData}"`
      : `certificate-authority: "${o.caPath}"`;
  return [
    'apiVersion: v1',
    'kind: Config',
    `clusters: [{ name: bed, cluster: { server: "${o.server}", ${ca} } }]`,
    `users: [{ name: tarn, user: { token: "${o.token}" } }]`,
    'contexts: [{ name: bed, context: { cluster: bed, user: tarn } }]',
    'current-context: bed',
    '',
  ].join('\n');
}

/** GET over TLS with a pinned CA (or none, for a self-signed health endpoint) and an optional token. */
function tlsReady(url: string, ca: string | undefined, token?: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request(
      url,
      {
        ca,
        rejectUnauthorized: ca !== undefined,
        headers: token ? { authorization: `Bearer ${token}` } : {},
        timeout: 2000,
      },
      (res) => {
        res.resume();
        resolve((res.statusCode ?? 500) < 400);
      },
    );
    req.on('error', () => resolve(false));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

/**
 * A Kubernetes control plane on loopback, as envtest runs one, plus the controller manager so that
 * namespaces get their default ServiceAccount and finish deleting: etcd, kube-apiserver (token auth,
 * RBAC, service-account keys) and kube-controller-manager, all built from the Go module proxy. No
 * kubelet: no pod ever runs.
 */
export async function startKube(dir = mkdtempSync(join(tmpdir(), 'bed-kube-'))): Promise<Kube> {
  const started: Service[] = [];
  const stop = async () => {
    for (const s of started.reverse()) await s.stop();
  };
  try {
    const etcdPort = await freePort();
    const peerPort = await freePort();
    const etcdUrl = `http://127.0.0.1:${etcdPort}`;
    started.push(
      await startService({
        name: 'etcd',
        dir,
        command: [
          binary('etcd'),
          '--data-dir',
          join(dir, 'etcd'),
          '--listen-client-urls',
          etcdUrl,
          '--advertise-client-urls',
          etcdUrl,
          '--listen-peer-urls',
          `http://127.0.0.1:${peerPort}`,
          '--initial-advertise-peer-urls',
          `http://127.0.0.1:${peerPort}`,
          '--initial-cluster',
          `default=http://127.0.0.1:${peerPort}`,
          '--unsafe-no-fsync',
          '--log-level',
          'warn',
        ],
        ready: () => httpReady(`${etcdUrl}/health`),
      }),
    );

    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const saKey = join(dir, 'sa.key');
    const saPub = join(dir, 'sa.pub');
    writeFileSync(saKey, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    writeFileSync(saPub, publicKey.export({ type: 'spki', format: 'pem' }));
    const token = randomBytes(24).toString('hex');
    const tokens = join(dir, 'tokens.csv');
    writeFileSync(tokens, `${token},tarn-admin,tarn-admin,"system:masters"\n`, { mode: 0o600 });
    const certDir = join(dir, 'certs');
    mkdirSync(certDir);
    const apiPort = await freePort();
    const server = `https://127.0.0.1:${apiPort}`;
    const caPath = join(certDir, 'apiserver.crt');
    started.push(
      await startService({
        name: 'kube-apiserver',
        dir,
        timeoutMs: 90_000,
        command: [
          binary('kube-apiserver'),
          `--etcd-servers=${etcdUrl}`,
          `--cert-dir=${certDir}`,
          `--secure-port=${apiPort}`,
          '--bind-address=127.0.0.1',
          '--advertise-address=127.0.0.1',
          // The endpoint reconciler refuses loopback addresses (and there is no Service network here).
          '--endpoint-reconciler-type=none',
          '--service-cluster-ip-range=10.0.0.0/24',
          '--authorization-mode=RBAC',
          `--token-auth-file=${tokens}`,
          `--service-account-issuer=${server}`,
          `--service-account-key-file=${saPub}`,
          `--service-account-signing-key-file=${saKey}`,
          '--disable-admission-plugins=ServiceAccount',
          '--allow-privileged=true',
          '--enable-priority-and-fairness=false',
          '--v=1',
        ],
        ready: async () =>
          existsSync(caPath) && tlsReady(`${server}/readyz`, readFileSync(caPath, 'utf8'), token),
      }),
    );

    const kubeconfigPath = join(dir, 'kubeconfig');
    writeFileSync(kubeconfigPath, kubeconfigYaml({ server, caPath, token }), { mode: 0o600 });

    const cmPort = await freePort();
    started.push(
      await startService({
        name: 'kube-controller-manager',
        dir,
        timeoutMs: 60_000,
        command: [
          binary('kube-controller-manager'),
          `--kubeconfig=${kubeconfigPath}`,
          `--authentication-kubeconfig=${kubeconfigPath}`,
          `--authorization-kubeconfig=${kubeconfigPath}`,
          '--bind-address=127.0.0.1',
          `--secure-port=${cmPort}`,
          `--service-account-private-key-file=${saKey}`,
          `--root-ca-file=${caPath}`,
          '--leader-elect=false',
          '--v=1',
        ],
        ready: () => tlsReady(`https://127.0.0.1:${cmPort}/healthz`, undefined),
      }),
    );
    return {
      name: 'kube',
      log: join(dir, 'kube-apiserver.log'),
      stop,
      pause: () => {
        for (const s of started) s.pause();
      },
      resume: () => {
        for (const s of started) s.resume();
      },
      server,
      kubeconfigPath,
      token,
      caPath,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}
