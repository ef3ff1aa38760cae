// The admission webhook on a real API server: the operator's webhook serves on loopback, the
// chart's MutatingWebhookConfiguration points the API server at it (a url instead of the Service:
// there is no pod network here), and Pods, Jobs and the webhook's certificates go through the
// real admission chain. No kubelet: the pods never run, their specs are what is checked.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import {
  Controller,
  Kube,
  KubeError,
  OperatorMetrics,
  type RunningWebhook,
  SecretCertificates,
  silentLogger,
  startWebhook,
} from '@tarnjs/operator';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { available, binary, freePort } from '../bed/index.js';
import { type Kube as BedKube, startKube } from '../bed/services.js';
import { REPO } from '../helpers/spawn.js';
import { eventually } from '../helpers/wait.js';
import { cacheSpec, installCrd } from './fixtures.js';

// biome-ignore lint/suspicious/noExplicitAny: the tests read whatever the API server answers
type Any = any;

const IMAGE = 'localhost/tarn-sidecar:test';
const OPERATOR_NS = 'tarn-system';
const CONFIG = 'tarn-operator';
const MWC = `/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/${CONFIG}`;

const pod = (name: string, labels: Record<string, string>, extra: Any = {}) => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { ...(name.endsWith('-') ? { generateName: name } : { name }), labels },
  spec: {
    containers: [{ name: 'app', image: 'localhost/app:1', env: [{ name: 'MODE', value: 'job' }] }],
    restartPolicy: 'Never',
    ...extra,
  },
});

describe.runIf(available('kube'))('the admission webhook on a real API server', () => {
  let bed: BedKube;
  let kube: Kube;
  const stop = new AbortController();
  let controllerDone: Promise<void>;
  let port: number;
  const ns = 'tarn-wh';
  const pods = `/api/v1/namespaces/${ns}/pods`;
  const storages = `/apis/tarn.dev/v1alpha1/namespaces/${ns}/tarnstorages`;
  let webhook: { running: RunningWebhook; stop: AbortController; certificates: SecretCertificates };

  /** The operator's webhook on loopback, its certificate for 127.0.0.1, its CA in the chart's configuration. */
  async function serve(secret: string, timing: { ca: number; cert: number; overlap: number; sync: number }) {
    const halt = new AbortController();
    const certificates = new SecretCertificates({
      kube,
      log: silentLogger,
      namespace: OPERATOR_NS,
      secret,
      webhookConfig: CONFIG,
      hosts: ['127.0.0.1'],
      caValidityMs: timing.ca,
      certValidityMs: timing.cert,
      overlapMs: timing.overlap,
    });
    const running: RunningWebhook = await startWebhook(
      {
        kube,
        log: silentLogger,
        image: IMAGE,
        observer: metrics,
        port,
        address: '127.0.0.1',
        certificates,
        syncIntervalMs: timing.sync,
      },
      halt.signal,
    );
    return { running, stop: halt, certificates };
  }
  /** The operator's metrics, fed by every webhook the tests start. */
  const metrics = new OperatorMetrics({
    servedCertificate: () => webhook?.running.server.certificate,
    rotation: () => webhook?.certificates.stats,
  });
  async function metric(name: string): Promise<number> {
    const text = await metrics.registry.metrics();
    const line = text.split('\n').find((l) => l.startsWith(`${name} `));
    return Number(line?.split(' ')[1] ?? Number.NaN);
  }
  const halt = async () => {
    webhook.stop.abort();
    await webhook.running.done;
  };
  const LONG = { ca: 365 * 86_400_000, cert: 30 * 86_400_000, overlap: 1000, sync: 500 };

  beforeAll(async () => {
    bed = await startKube();
    const config = new KubeConfig();
    config.loadFromFile(bed.kubeconfigPath);
    kube = await Kube.from(config);
    await installCrd(kube, [ns, OPERATOR_NS]);
    // The chart's webhook configuration, as helm renders it, pointed at loopback.
    const rendered = execFileSync(
      binary('helm'),
      [
        'template',
        'tarn',
        join(REPO, 'charts', 'tarn'),
        '--namespace',
        OPERATOR_NS,
        '--kube-version',
        '1.37.0',
      ],
      { encoding: 'utf8' },
    );
    const mwc = parseAllDocuments(rendered)
      .map((d) => d.toJS() as Any)
      .find((o) => o?.kind === 'MutatingWebhookConfiguration');
    port = await freePort();
    for (const w of mwc.webhooks) w.clientConfig = { url: `https://127.0.0.1:${port}/mutate-pods` };
    await kube.create('/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations', mwc);
    const controller = new Controller({ kube, image: IMAGE, log: silentLogger, resyncMs: 60_000 });
    controllerDone = controller.run(stop.signal);
    webhook = await serve('tarn-webhook-cert', LONG);
    await kube.create(storages, {
      apiVersion: 'tarn.dev/v1alpha1',
      kind: 'TarnStorage',
      metadata: { name: 'cache' },
      spec: cacheSpec,
    });
    await eventually(async () => {
      const s = await kube.get<Any>(`${storages}/cache`);
      return s.status?.conditions?.[0]?.status === 'True' ? s : undefined;
    });
    // The API server sees the new caBundle a moment after it is written.
    await eventually(() => kube.create(pods, pod('warm-up-', { 'tarn.dev/storage': 'cache' })), 30_000);
  }, 180_000);
  afterAll(async () => {
    stop.abort();
    webhook?.stop.abort();
    await webhook?.running.done;
    await controllerDone;
    await kube?.close();
    await bed?.stop();
  });

  it('gives a labelled Pod the sidecar, its volumes and environment: the same additions a Deployment gets', async () => {
    const created = await kube.create<Any>(pods, pod('labelled', { 'tarn.dev/storage': 'cache' }));
    const storage = await kube.get<Any>(`${storages}/cache`);
    expect(created.metadata.annotations['tarn.dev/config-hash']).toBe(storage.status.configHash);
    const [sidecar] = created.spec.initContainers;
    expect(sidecar).toMatchObject({ name: 'tarn-sidecar', restartPolicy: 'Always', image: IMAGE });
    expect(sidecar.startupProbe.exec.command).toContain('probe');
    const app = created.spec.containers[0];
    expect(app.env).toEqual([
      { name: 'MODE', value: 'job' },
      { name: 'TARN_SIDECAR', value: '/run/tarn/tarn.sock' },
    ]);
    expect(app.volumeMounts).toContainEqual({ name: 'tarn-local', mountPath: '/tarn/local', readOnly: true });
    expect(created.spec.volumes.map((v: Any) => v.name).sort()).toEqual([
      'tarn-config',
      'tarn-exchange',
      'tarn-local',
      'tarn-socket',
    ]);
    // A labelled Deployment gets its additions by the workload path: the same sidecar, byte for byte.
    await kube.create(`/apis/apps/v1/namespaces/${ns}/deployments`, {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'web', labels: { 'tarn.dev/storage': 'cache' } },
      spec: {
        replicas: 0,
        selector: { matchLabels: { app: 'web' } },
        template: {
          metadata: { labels: { app: 'web' } },
          spec: { containers: [{ name: 'app', image: 'localhost/app:1' }] },
        },
      },
    });
    const template = await eventually(async () => {
      const d = await kube.get<Any>(`/apis/apps/v1/namespaces/${ns}/deployments/web`);
      return d.spec.template.spec.initContainers ? d.spec.template : undefined;
    });
    expect(sidecar).toEqual(template.spec.initContainers[0]);
    expect(created.spec.volumes).toEqual(template.spec.volumes);
  });

  it('gives a labelled Job’s Pods the sidecar, and never sees an unlabelled Pod or the operator’s namespace', async () => {
    const before = { ...webhook.running.server.stats };
    await kube.create(pods, pod('plain', { app: 'x' }));
    await kube.create(`/api/v1/namespaces/${OPERATOR_NS}/pods`, pod('own', { 'tarn.dev/storage': 'cache' }));
    expect(webhook.running.server.stats.reviews).toBe(before.reviews);
    const own = await kube.get<Any>(`/api/v1/namespaces/${OPERATOR_NS}/pods/own`);
    expect(own.spec.initContainers).toBeUndefined();

    await kube.create(`/apis/batch/v1/namespaces/${ns}/jobs`, {
      apiVersion: 'batch/v1',
      kind: 'Job',
      metadata: { name: 'square' },
      spec: {
        parallelism: 2,
        completions: 2,
        template: pod('', { 'tarn.dev/storage': 'cache' }),
      },
    });
    const jobPods = await eventually(async () => {
      const list = await kube.list<Any>(pods, { labelSelector: 'job-name=square' });
      return list.items.length === 2 ? list.items : undefined;
    });
    for (const p of jobPods) expect(p.spec.initContainers.map((c: Any) => c.name)).toEqual(['tarn-sidecar']);
    expect(webhook.running.server.stats.mutated).toBe(before.mutated + 2);
    // The same counts, as Prometheus scrapes them.
    expect(await metric('tarn_webhook_admissions_total{outcome="mutated"}')).toBe(
      webhook.running.server.stats.mutated,
    );
    const expiry = await metric('tarn_webhook_certificate_expiry_timestamp_seconds');
    expect(expiry * 1000).toBeGreaterThan(Date.now() + 29 * 86_400_000);
  });

  it('leaves a Pod that already carries the sidecar as it is; one marked so is never even sent', async () => {
    const first = await kube.create<Any>(pods, pod('carrier-', { 'tarn.dev/storage': 'cache' }));
    const { metadata, spec } = first;
    expect(metadata.labels['tarn.dev/injected']).toBe('cache');
    const copy = (labels: Record<string, string>) => ({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { generateName: 'carrier-', labels, annotations: metadata.annotations },
      spec: {
        containers: spec.containers,
        initContainers: spec.initContainers,
        volumes: spec.volumes,
        restartPolicy: 'Never',
      },
    });
    const before = { ...webhook.running.server.stats };
    // Marked (as a Deployment's pods are, from its template): the objectSelector keeps it away.
    const marked = await kube.create<Any>(pods, copy(metadata.labels));
    expect(marked.spec.initContainers).toHaveLength(1);
    expect(webhook.running.server.stats.reviews).toBe(before.reviews);
    // Not marked (a sidecar written by hand, say): sent, and answered with no change.
    const { 'tarn.dev/injected': _, ...unmarked } = metadata.labels;
    const again = await kube.create<Any>(pods, copy(unmarked));
    expect(again.spec.initContainers).toHaveLength(1);
    expect(again.spec.containers[0].env.filter((e: Any) => e.name === 'TARN_SIDECAR')).toHaveLength(1);
    expect(again.spec.volumes).toEqual(first.spec.volumes);
    expect(webhook.running.server.stats.unchanged).toBe(before.unchanged + 1);
  });

  it('refuses a Pod whose storage is missing or not Ready, saying why; a tarn.dev/optional one runs without the sidecar', async () => {
    const missing = await kube
      .create(pods, pod('lost', { 'tarn.dev/storage': 'nowhere' }))
      .catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(KubeError);
    expect((missing as KubeError).status).toBe(403);
    expect((missing as KubeError).message).toContain(`TarnStorage ${ns}/nowhere does not exist`);
    expect((missing as KubeError).message).toContain('tarn.dev/optional=true');

    const cyclic = structuredClone(cacheSpec);
    cyclic.nodes.push(
      { name: 'loop-a', fanout: { members: ['loop-b'] } },
      { name: 'loop-b', small: { maxSize: 10, node: 'loop-a' } },
    );
    await kube.create(storages, {
      apiVersion: 'tarn.dev/v1alpha1',
      kind: 'TarnStorage',
      metadata: { name: 'cyclic' },
      spec: cyclic,
    });
    await eventually(async () => {
      const s = await kube.get<Any>(`${storages}/cyclic`);
      return s.status?.conditions?.[0]?.reason === 'InvalidSpec' ? s : undefined;
    });
    const broken = await kube
      .create(pods, pod('broken', { 'tarn.dev/storage': 'cyclic' }))
      .catch((e: unknown) => e);
    expect((broken as KubeError).message).toMatch(
      /TarnStorage tarn-wh\/cyclic is not Ready \(InvalidSpec: .*cycle/,
    );

    const optional = await kube.create<Any>(
      pods,
      pod('relaxed', { 'tarn.dev/storage': 'nowhere', 'tarn.dev/optional': 'true' }),
    );
    expect(optional.spec.initContainers).toBeUndefined();
  });

  it('rotates its CA and certificate under load without losing an admission', async () => {
    await halt();
    // Lifetimes of seconds: a CA rotation (new CA trusted, then serving, then the old one dropped)
    // and several certificate renewals happen while pods are created without pause.
    webhook = await serve('tarn-webhook-fast', { ca: 9000, cert: 3000, overlap: 1000, sync: 150 });
    await eventually(() => kube.create(pods, pod('fast-', { 'tarn.dev/storage': 'cache' })), 30_000);
    const first = { ...webhook.certificates.stats };
    const failures: string[] = [];
    let created = 0;
    const until = Date.now() + 16_000;
    await Promise.all(
      [0, 1, 2].map(async () => {
        while (Date.now() < until) {
          try {
            const p = await kube.create<Any>(pods, pod('load-', { 'tarn.dev/storage': 'cache' }));
            if (p.spec.initContainers?.[0]?.name !== 'tarn-sidecar')
              failures.push(`${p.metadata.name}: no sidecar`);
            created++;
          } catch (e) {
            failures.push((e as Error).message);
          }
        }
      }),
    );
    const stats = webhook.certificates.stats;
    console.log(`rotation under load: ${created} pods admitted; stats ${JSON.stringify(stats)}`);
    expect(failures).toEqual([]);
    expect(created).toBeGreaterThan(50);
    expect(stats.caIssued - first.caIssued).toBeGreaterThanOrEqual(1);
    expect(stats.certIssued - first.certIssued).toBeGreaterThanOrEqual(4);
    const bundle = Buffer.from(
      (await kube.get<Any>(MWC)).webhooks[0].clientConfig.caBundle,
      'base64',
    ).toString();
    expect(bundle.match(/BEGIN CERTIFICATE/g)?.length).toBeLessThanOrEqual(2);
  }, 90_000);

  it('keeps one CA between replicas racing on a fresh Secret, and replaces a Secret that holds no working CA', async () => {
    const replica = (secret: string) =>
      new SecretCertificates({
        kube,
        log: silentLogger,
        namespace: OPERATOR_NS,
        secret,
        hosts: ['127.0.0.1'],
        caValidityMs: 86_400_000,
        certValidityMs: 3_600_000,
        overlapMs: 1000,
      });
    const served = await Promise.all([0, 1, 2].map(() => replica('tarn-webhook-race').sync()));
    const secret = await kube.get<Any>(`/api/v1/namespaces/${OPERATOR_NS}/secrets/tarn-webhook-race`);
    const stored = Buffer.from(secret.data['tls.crt'], 'base64').toString();
    // Whoever lost the compare-and-swap read the winner's pair: everybody serves the same one.
    for (const pair of served) expect(pair.certificate).toBe(stored);

    await kube.create(`/api/v1/namespaces/${OPERATOR_NS}/secrets`, {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'tarn-webhook-junk' },
      data: { 'ca.crt': Buffer.from('not a certificate').toString('base64') },
    });
    const pair = await replica('tarn-webhook-junk').sync();
    const fixed = await kube.get<Any>(`/api/v1/namespaces/${OPERATOR_NS}/secrets/tarn-webhook-junk`);
    expect(Buffer.from(fixed.data['tls.crt'], 'base64').toString()).toBe(pair.certificate);
    expect(fixed.type).toBe('Opaque'); // a Secret's type cannot change; the data can
  });

  it('follows the documented failure policy when the webhook is down: Fail for the labelled, Ignore for the optional', async () => {
    await halt();
    const refused = await kube
      .create(pods, pod('while-down', { 'tarn.dev/storage': 'cache' }))
      .catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(KubeError);
    expect((refused as KubeError).message).toMatch(/failed calling webhook "pods\.tarn\.dev"/);
    expect(await kube.find(`${pods}/while-down`)).toBeUndefined();
    const optional = await kube.create<Any>(
      pods,
      pod('optional-down', { 'tarn.dev/storage': 'cache', 'tarn.dev/optional': 'true' }),
    );
    expect(optional.spec.initContainers).toBeUndefined();
    // Unlabelled pods never depended on it.
    await kube.create(pods, pod('plain-down', {}));
  });
});
