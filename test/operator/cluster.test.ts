import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import {
  Controller,
  Kube,
  KubeError,
  type KubeObject,
  reconcileStorage,
  silentLogger,
} from '@tarnjs/operator';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { available } from '../bed/index.js';
import { type Kube as BedKube, startKube } from '../bed/services.js';
import { REPO } from '../helpers/spawn.js';
import { eventually } from '../helpers/wait.js';
import { cacheSpec, installCrd } from './fixtures.js';

// biome-ignore lint/suspicious/noExplicitAny: the tests read whatever the API server answers
type Any = any;

const IMAGE = 'localhost/tarn-sidecar:test';
const deployment = (name: string, labels: Record<string, string>, containers = ['app']) => ({
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { name, labels },
  spec: {
    replicas: 2,
    selector: { matchLabels: { app: name } },
    template: {
      metadata: { labels: { app: name } },
      spec: {
        containers: containers.map((c) => ({
          name: c,
          image: 'localhost/app:1',
          env: [{ name: 'MODE', value: 'web' }],
        })),
      },
    },
  },
});

describe.runIf(available('kube'))('the operator on a real API server', () => {
  let bed: BedKube;
  let kube: Kube;
  const stop = new AbortController();
  let running: Promise<void>;
  let controller: Controller;
  const ns = 'tarn-op';
  const storages = `/apis/tarn.dev/v1alpha1/namespaces/${ns}/tarnstorages`;
  const deployments = `/apis/apps/v1/namespaces/${ns}/deployments`;
  const storage = (name: string, spec: unknown = cacheSpec) => ({
    apiVersion: 'tarn.dev/v1alpha1',
    kind: 'TarnStorage',
    metadata: { name },
    spec,
  });
  const ready = (name: string) =>
    eventually(async () => {
      const s = await kube.get<Any>(`${storages}/${name}`);
      const c = s.status?.conditions?.find((x: Any) => x.type === 'Ready');
      return c && s.status.observedGeneration === s.metadata.generation ? s : undefined;
    });

  beforeAll(async () => {
    bed = await startKube();
    const config = new KubeConfig();
    config.loadFromFile(bed.kubeconfigPath);
    kube = await Kube.from(config);
    await installCrd(kube, [ns]);
    controller = new Controller({ kube, image: IMAGE, log: silentLogger, resyncMs: 60_000 });
    running = controller.run(stop.signal);
  }, 180_000);
  afterAll(async () => {
    stop.abort();
    await running;
    await kube?.close();
    await bed?.stop();
  });

  it('refuses a broken spec at the API server, naming the fields (the CRD’s CEL rules)', async () => {
    const broken = {
      root: 'nope',
      nodes: [
        {
          name: 'a',
          disk: { volume: { emptyDir: {}, hostPath: { path: '/x' } }, mountPath: '/x', maxSize: 'lots' },
        },
        { name: 'b', levels: { levels: [{ node: 'b' }, { node: 'ghost' }] } },
        { name: 'c', redis: { url: 'redis://h?password=x' }, s3: { bucket: 'b' } },
      ],
      memo: { index: 'ghost' },
    };
    const e = await kube.create(storages, storage('broken', broken)).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(KubeError);
    const message = (e as KubeError).message;
    for (const why of [
      'root must name one of the nodes',
      'every level must name one of the nodes',
      'a node cannot contain itself',
      'memo.index must name one of the nodes',
      'a node is exactly one of',
      'a volume is exactly one of',
      'a size is bytes, or a number with a unit',
      'credentials never go there',
    ])
      expect(message).toContain(why);
    // Unknown fields are refused too (strict field validation, as kubectl apply asks for).
    const unknown = await kube
      .create(`${storages}?fieldValidation=Strict`, storage('unknown', { ...cacheSpec, rot: 'x' }))
      .catch((x: unknown) => x);
    expect((unknown as KubeError).message).toMatch(/unknown field "spec.rot"/);
  });

  it('accepts every example as written (a strict dry run: no unknown field, every rule met)', async () => {
    for (const file of readdirSync(join(REPO, 'examples')).filter((f) => f.endsWith('.yaml')))
      for (const doc of parseAllDocuments(readFileSync(join(REPO, 'examples', file), 'utf8'))) {
        const o = doc.toJS() as Any;
        const at = {
          TarnStorage: storages,
          Deployment: deployments,
          Job: `/apis/batch/v1/namespaces/${ns}/jobs`,
        }[o.kind as string];
        if (!at) throw new Error(`${file}: an example of kind ${o.kind} the test does not know`);
        await kube.create(`${at}?dryRun=All&fieldValidation=Strict`, o);
      }
  });

  it('reconciles a storage into a ConfigMap and status, and injects the sidecar into a labelled Deployment', async () => {
    await kube.create(deployments, deployment('web', { 'tarn.dev/storage': 'lab' }, ['app', 'worker']));
    await kube.create(deployments, deployment('other', {}));
    await kube.create(storages, storage('lab'));
    const s = await ready('lab');
    const cond = s.status.conditions.find((c: Any) => c.type === 'Ready');
    expect(cond).toMatchObject({ status: 'True', reason: 'Reconciled' });
    expect(s.status.workloads).toEqual(['Deployment/web']);
    expect(s.status.injected).toBe(1);
    expect(s.status.root).toBe('levels/cache');
    expect(s.metadata.finalizers).toContain('tarn.dev/cleanup');

    const cm = await kube.get<Any>(`/api/v1/namespaces/${ns}/configmaps/tarn-lab`);
    expect(cm.metadata.ownerReferences[0]).toMatchObject({
      kind: 'TarnStorage',
      name: 'lab',
      controller: true,
    });
    expect(cm.data['tarn.yaml']).toContain('env: TARN_REDIS_PASSWORD');
    expect(cm.data['tarn.yaml']).not.toContain('password: ');

    const web = await eventually(async () => {
      const d = await kube.get<Any>(`${deployments}/web`);
      return d.spec.template.spec.initContainers ? d : undefined;
    });
    const pod = web.spec.template;
    expect(pod.metadata.annotations['tarn.dev/config-hash']).toBe(s.status.configHash);
    expect(pod.spec.initContainers.map((c: Any) => [c.name, c.restartPolicy, c.image])).toEqual([
      ['tarn-sidecar', 'Always', IMAGE],
    ]);
    for (const c of pod.spec.containers) {
      expect(c.env).toContainEqual({ name: 'TARN_SIDECAR', value: '/run/tarn/tarn.sock' });
      expect(c.env).toContainEqual({ name: 'MODE', value: 'web' }); // the user's, kept
      expect(c.volumeMounts).toContainEqual({ name: 'tarn-local', mountPath: '/tarn/local', readOnly: true });
    }
    expect(pod.spec.volumes.map((v: Any) => v.name).sort()).toEqual(
      ['tarn-config', 'tarn-exchange', 'tarn-local', 'tarn-socket'].sort(),
    );
    const other = await kube.get<Any>(`${deployments}/other`);
    expect(other.spec.template.spec.initContainers).toBeUndefined();
  });

  it('is idempotent: reconciling again changes nothing, and the pods do not roll', async () => {
    const before = await kube.get<KubeObject>(`${deployments}/web`);
    for (let i = 0; i < 3; i++)
      await reconcileStorage({ kube, image: IMAGE }, { namespace: ns, name: 'lab' });
    const after = await kube.get<KubeObject>(`${deployments}/web`);
    expect(after.metadata?.generation).toBe(before.metadata?.generation);
    expect(after.metadata?.resourceVersion).toBe(before.metadata?.resourceVersion);
  });

  it('keeps its fields when the user applies the Deployment again (server-side, their own manager)', async () => {
    const mine = deployment('web', { 'tarn.dev/storage': 'lab' }, ['app', 'worker']);
    (mine.spec.template.spec.containers[0] as Any).image = 'localhost/app:2';
    // `kubectl apply --server-side`: the same call under the user's field manager.
    // (--force-conflicts: the Deployment was created by another manager, as `kubectl create` does.)
    const res = await kube.apply<Any>(`${deployments}/web`, mine, { fieldManager: 'kubectl', force: true });
    expect(res.spec.template.spec.containers[0].image).toBe('localhost/app:2');
    expect(res.spec.template.spec.initContainers?.[0]?.name).toBe('tarn-sidecar');
    expect(res.spec.template.spec.containers[0].env).toContainEqual({
      name: 'TARN_SIDECAR',
      value: '/run/tarn/tarn.sock',
    });
  });

  it('rolls the pods when the storage changes, and only then', async () => {
    const before = await kube.get<Any>(`${deployments}/web`);
    const changed = structuredClone(cacheSpec);
    (changed.nodes[1]?.disk as { maxSize: string }).maxSize = '60G';
    await kube.merge(`${storages}/lab`, { spec: { nodes: changed.nodes } });
    const s = await eventually(async () => {
      const x = await kube.get<Any>(`${storages}/lab`);
      return x.status.observedGeneration === x.metadata.generation ? x : undefined;
    });
    const after = await eventually(async () => {
      const d = await kube.get<Any>(`${deployments}/web`);
      return d.spec.template.metadata.annotations['tarn.dev/config-hash'] === s.status.configHash
        ? d
        : undefined;
    });
    expect(s.status.configHash).not.toBe(before.spec.template.metadata.annotations['tarn.dev/config-hash']);
    expect(after.metadata.generation).toBe(before.metadata.generation + 1);
    const cm = await kube.get<Any>(`/api/v1/namespaces/${ns}/configmaps/tarn-lab`);
    expect(cm.data['tarn.yaml']).toContain('maxSize: 60G');
  });

  it('reports a spec the CRD cannot refuse (a cycle) as Ready=False with an Event, once, without retrying', async () => {
    const cyclic = structuredClone(cacheSpec);
    cyclic.nodes.push(
      { name: 'loop-a', fanout: { members: ['loop-b'] } },
      { name: 'loop-b', small: { maxSize: 10, node: 'loop-a' } },
    );
    await kube.create(storages, storage('cyclic', cyclic));
    const s = await eventually(async () => {
      const x = await kube.get<Any>(`${storages}/cyclic`);
      const c = x.status?.conditions?.find((y: Any) => y.type === 'Ready');
      return c?.reason === 'InvalidSpec' ? x : undefined;
    });
    expect(s.status.conditions[0]).toMatchObject({
      status: 'False',
      message: expect.stringMatching(/cycle/),
    });
    for (let i = 0; i < 2; i++)
      await reconcileStorage({ kube, image: IMAGE }, { namespace: ns, name: 'cyclic' });
    const events = await kube.list<Any>(`/api/v1/namespaces/${ns}/events`);
    const mine = events.items.filter((e) => e.involvedObject.name === 'cyclic' && e.reason === 'InvalidSpec');
    expect(mine).toHaveLength(1);
    expect(controller.queue.failures(`${ns}/cyclic`)).toBe(0);
  });

  it('takes everything back when the label goes, and nothing of the user’s', async () => {
    await kube.create(deployments, deployment('batch', { 'tarn.dev/storage': 'lab', team: 'ml' }));
    await eventually(async () =>
      (await kube.get<Any>(`${deployments}/batch`)).spec.template.spec.initContainers ? true : undefined,
    );
    await kube.merge(`${deployments}/batch`, { metadata: { labels: { 'tarn.dev/storage': null } } });
    const d = await eventually(async () => {
      const x = await kube.get<Any>(`${deployments}/batch`);
      return x.spec.template.spec.initContainers === undefined ? x : undefined;
    });
    expect(d.metadata.labels).toEqual({ team: 'ml' });
    expect(d.spec.template.metadata.annotations).toBeUndefined();
    expect(d.spec.template.spec.volumes).toBeUndefined();
    expect(d.spec.template.spec.containers[0].env).toEqual([{ name: 'MODE', value: 'web' }]);
    expect(d.spec.template.spec.containers[0].volumeMounts).toBeUndefined();
  });

  it('on delete, takes the sidecar out of every workload before the storage goes (finalizer); the ConfigMap is collected', async () => {
    await kube.delete(`${storages}/lab`);
    await eventually(async () => ((await kube.find(`${storages}/lab`)) === undefined ? true : undefined));
    const web = await kube.get<Any>(`${deployments}/web`);
    expect(web.spec.template.spec.initContainers).toBeUndefined();
    expect(web.spec.template.spec.containers.map((c: Any) => c.env)).toEqual([
      [{ name: 'MODE', value: 'web' }],
      [{ name: 'MODE', value: 'web' }],
    ]);
    expect(web.metadata.labels).toEqual({ 'tarn.dev/storage': 'lab' }); // the user's label stays
    await eventually(
      async () =>
        (await kube.find(`/api/v1/namespaces/${ns}/configmaps/tarn-lab`)) === undefined ? true : undefined,
      60_000,
    );
  });

  it('recovers from an API server that stops answering: its watches start again', async () => {
    bed.pause();
    await new Promise((r) => setTimeout(r, 3000));
    bed.resume();
    await kube.create(deployments, deployment('late', { 'tarn.dev/storage': 'late' }));
    await eventually(() => kube.create(storages, storage('late')), 30_000);
    const s = await ready('late');
    expect(s.status.workloads).toEqual(['Deployment/late']);
  }, 90_000);
});
