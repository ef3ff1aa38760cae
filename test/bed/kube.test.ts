import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import {
  ApiException,
  ApiextensionsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  Watch,
} from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '../helpers/wait.js';
import { available, binary } from './index.js';
import { type Kube, startKube } from './services.js';

const run = promisify(execFile);

describe.runIf(available('kube'))('bed: Kubernetes control plane', () => {
  let kube: Kube;
  let kc: KubeConfig;
  beforeAll(async () => {
    kube = await startKube();
    kc = new KubeConfig();
    kc.loadFromFile(kube.kubeconfigPath);
  }, 180_000);
  afterAll(() => kube?.stop());

  it('creates a namespace, which the controller manager equips and later deletes', async () => {
    const core = kc.makeApiClient(CoreV1Api);
    await core.createNamespace({ body: { metadata: { name: 'bed-smoke' } } });
    const sa = await eventually(() =>
      core.readNamespacedServiceAccount({ name: 'default', namespace: 'bed-smoke' }),
    );
    expect(sa.metadata?.name).toBe('default');
    await core.deleteNamespace({ name: 'bed-smoke' });
    // Without a controller manager (plain envtest) a namespace never finishes deleting.
    await eventually(async () => {
      try {
        await core.readNamespace({ name: 'bed-smoke' });
        return undefined;
      } catch (e) {
        return e instanceof ApiException && e.code === 404 ? true : undefined;
      }
    }, 60_000);
  });

  it('applies a CRD and watches a custom object', async () => {
    const ext = kc.makeApiClient(ApiextensionsV1Api);
    await ext.createCustomResourceDefinition({
      body: {
        metadata: { name: 'smokes.bed.tarn.dev' },
        spec: {
          group: 'bed.tarn.dev',
          names: { kind: 'Smoke', plural: 'smokes', singular: 'smoke' },
          scope: 'Namespaced',
          versions: [
            {
              name: 'v1',
              served: true,
              storage: true,
              schema: {
                openAPIV3Schema: {
                  type: 'object',
                  properties: { spec: { type: 'object', properties: { lake: { type: 'string' } } } },
                },
              },
            },
          ],
        },
      },
    });
    await eventually(async () => {
      const crd = await ext.readCustomResourceDefinition({ name: 'smokes.bed.tarn.dev' });
      return crd.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True')
        ? true
        : undefined;
    });
    const core = kc.makeApiClient(CoreV1Api);
    await core.createNamespace({ body: { metadata: { name: 'bed-crd' } } });
    const objects = kc.makeApiClient(CustomObjectsApi);
    const where = { group: 'bed.tarn.dev', version: 'v1', namespace: 'bed-crd', plural: 'smokes' };
    // Established comes a moment before the new resource is served: a watch started then gets a 404.
    await eventually(() => objects.listNamespacedCustomObject(where));

    const seen: Array<{ phase: string; lake: string }> = [];
    let watchError: unknown;
    const watching = await new Watch(kc).watch(
      '/apis/bed.tarn.dev/v1/namespaces/bed-crd/smokes',
      {},
      (phase, obj: { spec?: { lake?: string } }) => seen.push({ phase, lake: obj.spec?.lake ?? '' }),
      (err) => {
        watchError = err;
      },
    );
    await objects.createNamespacedCustomObject({
      ...where,
      body: {
        apiVersion: 'bed.tarn.dev/v1',
        kind: 'Smoke',
        metadata: { name: 'one' },
        spec: { lake: '/lake' },
      },
    });
    await eventually(async () => {
      if (watchError) throw new Error(`the watch ended: ${String(watchError)}`);
      return seen.length > 0 ? true : undefined;
    });
    watching.abort();
    expect(seen[0]).toEqual({ phase: 'ADDED', lake: '/lake' });
  });

  it('helm renders a chart', async () => {
    const chart = fileURLToPath(new URL('./fixtures/chart', import.meta.url));
    const { stdout } = await run(binary('helm'), ['template', 'smoke', chart, '--set', 'lake=/data/lake']);
    expect(stdout).toMatch(/name: smoke-config/);
    expect(stdout).toMatch(/lake: "\/data\/lake"/);
  });
});
