import { type Kube, type StorageSpec, tarnStorageCrd } from '@tarnjs/operator';
import { eventually } from '../helpers/wait.js';

/**
 * Gives a bare API server what the chart would: the TarnStorage CRD (applied, as Helm does), and
 * the namespaces; resolves once the resource is served in them (Established comes a moment before).
 */
export async function installCrd(kube: Kube, namespaces: readonly string[]): Promise<void> {
  await kube.apply(
    '/apis/apiextensions.k8s.io/v1/customresourcedefinitions/tarnstorages.tarn.dev',
    tarnStorageCrd(),
    { force: true },
  );
  for (const name of namespaces)
    await kube.create('/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
  for (const name of namespaces)
    await eventually(() => kube.list(`/apis/tarn.dev/v1alpha1/namespaces/${name}/tarnstorages`));
}

/** A node-local lake over Redis over S3, credentials from Secrets: the e2e tree. */
export const cacheSpec: StorageSpec = {
  root: 'cache',
  nodes: [
    { name: 'cache', levels: { levels: [{ node: 'local' }, { node: 'shared' }, { node: 's3' }] } },
    {
      name: 'local',
      disk: { volume: { hostPath: { path: '/var/lib/tarn/lab' } }, mountPath: '/tarn/local', maxSize: '50G' },
    },
    { name: 'shared', small: { maxSize: '1MiB', node: 'redis' } },
    {
      name: 'redis',
      redis: { url: 'redis://redis.tarn:6379', passwordSecretRef: { name: 'redis', key: 'password' } },
    },
    {
      name: 's3',
      s3: {
        bucket: 'lab',
        endpoint: 'http://minio.tarn:9000',
        credentials: {
          accessKeyId: { name: 's3', key: 'access-key' },
          secretAccessKey: { name: 's3', key: 'secret-key' },
        },
      },
    },
  ],
  memo: { index: 'redis' },
  sidecar: {
    exchange: { mountPath: '/tarn/exchange' },
    serve: { allowDelete: false, hotCache: { size: '16MiB' } },
  },
};

/** A one-container Deployment labelled to opt into the storage `storage`. */
export function labelledDeployment(name: string, storage: string) {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, labels: { 'tarn.dev/storage': storage } },
    spec: {
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: { containers: [{ name: 'app', image: 'localhost/app:1' }] },
      },
    },
  };
}
