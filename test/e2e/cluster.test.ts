// End to end on a real node (test/bed/node.ts): the chart installed with helm, the operator running
// as a pod from its image, a TarnStorage (a node-local hostPath lake over Redis over S3, both
// servers inside the node's namespace) and a labelled Deployment of two replicas of the test app
// (test/e2e/app.mjs) applied with kubectl. Everything the test reaches is inside the namespace:
// it drives the pods with curl run there (node.exec).
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chownSync, existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { availableLocally, binary } from '../bed/binaries.js';
import { imageAvailable } from '../bed/image.js';
import { GATEWAY, type Node, startNode } from '../bed/node.js';
import { REPO } from '../helpers/spawn.js';

// biome-ignore lint/suspicious/noExplicitAny: the tests read whatever kubectl and the app answer
type Any = any;

interface Built {
  image: string;
  archive: string;
}
const build = (name: string): Built =>
  JSON.parse(
    execFileSync('bash', [join(REPO, 'scripts/image.sh'), name], { encoding: 'utf8', maxBuffer: 16 << 20 })
      .trim()
      .split('\n')
      .at(-1) as string,
  ) as Built;

/** The key of the app's `bytesOf(seed, size)` (test/e2e/app.mjs): a sha256 chain. */
function bytesKey(seed: string, size: number): string {
  const out = Buffer.allocUnsafe(size);
  let block = createHash('sha256').update(seed).digest();
  for (let at = 0; at < size; at += 32) {
    block.copy(out, at, 0, Math.min(32, size - at));
    block = createHash('sha256').update(block).digest();
  }
  return createHash('sha256').update(out).digest('hex');
}

/** The labelled Deployment of two replicas of the test app, as a user writes it. */
function appDeployment(image: string, env: Array<{ name: string; value: string }> = []): string {
  return `apiVersion: apps/v1
kind: Deployment
metadata: { name: e2e, namespace: lab, labels: { tarn.dev/storage: lab } }
spec:
  replicas: 2
  selector: { matchLabels: { app: e2e } }
  template:
    metadata: { labels: { app: e2e } }
    spec:
      containers:
        - name: app
          image: ${image}
          imagePullPolicy: IfNotPresent
          env: ${JSON.stringify(env)}
          readinessProbe: { httpGet: { path: /healthz, port: 8080 }, periodSeconds: 1 }
`;
}

const S3_KEY = 'tarn-e2e';
const S3_SECRET = 'tarn-e2e-secret-0123456789';

describe.runIf(availableLocally('node') && imageAvailable())('end to end on a real node', () => {
  let node: Node;
  let lake: string;
  let images: Record<'sidecar' | 'operator' | 'app' | 'pause', Built>;
  const kubectl = (args: string[], input?: string, timeoutMs?: number) =>
    node.exec([binary('kubectl'), `--kubeconfig=${node.kubeconfigPath}`, ...args], { input, timeoutMs });
  const json = (args: string[]): Any => JSON.parse(kubectl([...args, '-o', 'json']));
  const curl = (url: string) =>
    JSON.parse(node.exec(['curl', '-sf', '-m', '60', url], { timeoutMs: 70_000 }));
  const appPods = () =>
    json(['get', 'pods', '-n', 'lab', '-l', 'app=e2e']).items.filter(
      (p: Any) => !p.metadata.deletionTimestamp,
    );
  const podUrl = (pod: Any, path: string) => `http://${pod.status.podIP}:8080${path}`;

  beforeAll(async () => {
    images = {
      pause: build('pause'),
      sidecar: build('sidecar'),
      operator: build('operator'),
      app: build('app'),
    };
    node = await startNode();
    for (const b of Object.values(images)) node.importImage(b.archive);
    // The storage's servers, inside the namespace on the gateway: pods reach them, nothing else can.
    await node.startInside(
      'redis',
      [
        'redis-server',
        '--bind',
        GATEWAY,
        '--port',
        '6390',
        '--save',
        '',
        '--appendonly',
        'no',
        '--protected-mode',
        'no',
      ],
      async () => node.exec(['redis-cli', '-h', GATEWAY, '-p', '6390', 'ping']).trim() === 'PONG',
    );
    const data = join(node.dir, 'minio');
    mkdirSync(data);
    await node.startInside(
      'minio',
      [
        binary('minio'),
        'server',
        data,
        '--address',
        `${GATEWAY}:9000`,
        '--console-address',
        `${GATEWAY}:9001`,
        '--quiet',
      ],
      async () => {
        node.exec(['curl', '-sf', '-m', '2', `http://${GATEWAY}:9000/minio/health/ready`]);
        return true;
      },
      {
        MINIO_ROOT_USER: S3_KEY,
        MINIO_ROOT_PASSWORD: S3_SECRET,
        MINIO_BROWSER: 'off',
        MINIO_UPDATE: 'off',
        HOME: node.dir,
      },
    );
    node.exec([
      'curl',
      '-sf',
      '-X',
      'PUT',
      '--user',
      `${S3_KEY}:${S3_SECRET}`,
      '--aws-sigv4',
      'aws:amz:us-east-1:s3',
      `http://${GATEWAY}:9000/lab`,
    ]);
  }, 900_000);
  afterAll(async () => {
    await node?.stop();
  }, 120_000);

  it('helm install runs the operator as a pod from its image', () => {
    const tag = (b: Built) => b.image.split(':').at(-1) as string;
    const t = Date.now();
    node.exec(
      [
        binary('helm'),
        'install',
        'tarn',
        join(REPO, 'charts', 'tarn'),
        '--namespace',
        'tarn-system',
        '--create-namespace',
        '--kubeconfig',
        node.kubeconfigPath,
        '--set',
        `image.tag=${tag(images.operator)}`,
        '--set',
        `sidecarImage.tag=${tag(images.sidecar)}`,
        '--set',
        `apiServer.host=${GATEWAY}`,
        '--set',
        'apiServer.port=6443',
        '--wait',
        '--timeout',
        '180s',
      ],
      { timeoutMs: 200_000 },
    );
    const pods = json(['get', 'pods', '-n', 'tarn-system']).items;
    expect(pods).toHaveLength(1);
    expect(pods[0].status.containerStatuses[0].ready).toBe(true);
    console.log(`helm install --wait: the operator's pod Ready in ${Date.now() - t} ms`);
  }, 240_000);

  it('a TarnStorage and a labelled Deployment: two replicas Ready with the sidecar, sharing values, zero-copy paths and one computation', async () => {
    // The node-local lake: a host folder the sidecar's user owns (docs/operator.md).
    lake = join(node.dir, 'lake');
    mkdirSync(lake);
    chownSync(lake, 65532, 65532);
    const t = Date.now();
    kubectl(
      ['apply', '-f', '-'],
      `
apiVersion: v1
kind: Namespace
metadata: { name: lab }
---
apiVersion: v1
kind: Secret
metadata: { name: s3, namespace: lab }
stringData: { access-key: ${S3_KEY}, secret-key: ${S3_SECRET} }
---
apiVersion: tarn.dev/v1alpha1
kind: TarnStorage
metadata: { name: lab, namespace: lab }
spec:
  root: tiers
  nodes:
    - name: tiers
      levels: { levels: [{ node: local }, { node: shared }, { node: s3 }] }
    - name: local
      disk: { volume: { hostPath: { path: ${lake} } }, mountPath: /tarn/local }
    - name: shared
      small: { maxSize: 1MiB, node: redis }
    - name: redis
      redis: { url: "redis://${GATEWAY}:6390" }
    - name: s3
      s3:
        bucket: lab
        endpoint: http://${GATEWAY}:9000
        credentials:
          accessKeyId: { name: s3, key: access-key }
          secretAccessKey: { name: s3, key: secret-key }
  memo: { index: redis }
---
${appDeployment(images.app.image)}`,
    );
    kubectl(['rollout', 'status', 'deployment/e2e', '-n', 'lab', '--timeout=180s'], undefined, 200_000);
    const readyMs = Date.now() - t;
    const pods = appPods();
    expect(pods).toHaveLength(2);
    for (const p of pods) {
      expect(p.spec.initContainers.map((c: Any) => c.name)).toEqual(['tarn-sidecar']);
      expect(p.status.initContainerStatuses[0].ready).toBe(true);
    }
    const [a, b] = pods;
    // A value written through one replica's sidecar is read through the other's.
    const small = curl(podUrl(a, '/put?seed=small&size=1000'));
    const got = curl(podUrl(b, `/get?key=${small.key}`));
    expect(got).toEqual({ sha256: small.key, size: 1000 });
    // A large value: its file in the node's lake, opened directly by the other replica.
    const large = curl(podUrl(a, `/put?seed=large&size=${20 << 20}`));
    const path = curl(podUrl(b, `/path?key=${large.key}`));
    expect(path.path).toMatch(/^\/tarn\/local\//);
    expect(path.sha256).toBe(large.key);
    // A smartCache'd function called by both replicas at once computes once.
    const [ra, rb] = await Promise.all([
      new Promise<Any>((r) => r(curl(podUrl(a, '/memo?x=12')))),
      new Promise<Any>((r) => r(curl(podUrl(b, '/memo?x=12')))),
    ]);
    expect(ra.result.square).toBe(144);
    expect(rb.result).toEqual(ra.result);
    const computed = pods.map((p: Any) => curl(podUrl(p, '/stats')).computed);
    expect(computed.reduce((x: number, y: number) => x + y, 0)).toBe(1);
    const memory = node.exec([
      'sh',
      '-c',
      // A process may end meanwhile: skipped.
      'for p in $(ip netns pids "$0"); do grep VmRSS /proc/$p/status 2>/dev/null; done; true',
      node.netns,
    ]);
    const rssMiB =
      memory
        .split('\n')
        .map((l) => Number(/(\d+) kB/.exec(l)?.[1] ?? 0))
        .reduce((x, y) => x + y, 0) / 1024;
    console.log(
      `kubectl apply → two replicas Ready: ${readyMs} ms; the node's processes: ${rssMiB.toFixed(0)} MiB RSS`,
    );
  }, 300_000);

  it('a user’s kubectl apply of the Deployment (client-side, a changed env) keeps the sidecar', () => {
    const deployment = json(['get', 'deployment', 'e2e', '-n', 'lab']);
    const manifest = appDeployment(images.app.image, [{ name: 'MODE', value: 'second' }]);
    kubectl(['apply', '-f', '-'], manifest);
    kubectl(['rollout', 'status', 'deployment/e2e', '-n', 'lab', '--timeout=120s'], undefined, 140_000);
    const after = json(['get', 'deployment', 'e2e', '-n', 'lab']);
    expect(after.metadata.generation).toBe(deployment.metadata.generation + 1);
    const pod = after.spec.template.spec;
    expect(pod.initContainers.map((c: Any) => c.name)).toEqual(['tarn-sidecar']);
    expect(pod.containers[0].env).toEqual(
      expect.arrayContaining([
        { name: 'MODE', value: 'second' },
        { name: 'TARN_SIDECAR', value: '/run/tarn/tarn.sock' },
      ]),
    );
    for (const p of appPods())
      expect(p.spec.initContainers.map((c: Any) => c.name)).toEqual(['tarn-sidecar']);
  }, 200_000);

  it('a pod deleted in the middle of an upload leaves nothing partial: no value, no temp file', async () => {
    const [a, b] = appPods();
    const size = 40 << 20; // 1 MiB each 200 ms: 8 s
    const key = bytesKey('slow', size);
    const [program, ...args] = [
      'nsenter',
      `--net=/run/netns/${node.netns}`,
      '--',
      'curl',
      '-s',
      podUrl(a, `/slow-put?seed=slow&size=${size}`),
    ];
    const upload = spawn(program as string, args, { stdio: ['ignore', 'pipe', 'ignore'] });
    let answered = '';
    upload.stdout.on('data', (d: Buffer) => {
      answered += d.toString();
    });
    await new Promise((r) => setTimeout(r, 2500));
    kubectl(
      ['delete', 'pod', a.metadata.name, '-n', 'lab', '--wait=true', '--timeout=90s'],
      undefined,
      100_000,
    );
    upload.kill();
    // The upload was cut, not finished: its client never got a key.
    expect(answered).not.toContain('"key"');
    const answer = JSON.parse(
      node.exec(['curl', '-s', '-m', '30', podUrl(b, `/get?key=${key}`)], { timeoutMs: 40_000 }),
    );
    expect(answer.code).toBe('TARN_NOT_FOUND');
    expect(existsSync(join(lake, key.slice(0, 2), key.slice(2)))).toBe(false);
    expect(readdirSync(join(lake, '.tmp'))).toEqual([]);
    kubectl(['rollout', 'status', 'deployment/e2e', '-n', 'lab', '--timeout=120s'], undefined, 140_000);
  }, 200_000);

  it('a labelled Job of three parallel pods: the webhook gives each the sidecar, one computes, all complete with the sidecars stopped', () => {
    // The operator made its own CA and keeps the webhook's caBundle (the chart leaves it empty).
    const config = json(['get', 'mutatingwebhookconfiguration', 'tarn-operator']);
    for (const w of config.webhooks) expect(w.clientConfig.caBundle).toMatch(/^[A-Za-z0-9+/=]{100,}$/);
    const t = Date.now();
    kubectl(
      ['apply', '-f', '-'],
      `
apiVersion: batch/v1
kind: Job
metadata: { name: squares, namespace: lab }
spec:
  parallelism: 3
  completions: 3
  backoffLimit: 0
  template:
    metadata: { labels: { tarn.dev/storage: lab } }
    spec:
      restartPolicy: Never
      containers:
        - name: step
          image: ${images.app.image}
          imagePullPolicy: IfNotPresent
          args: [once]
          env: [{ name: X, value: "21" }]
`,
    );
    try {
      kubectl(
        ['wait', '--for=condition=Complete', 'job/squares', '-n', 'lab', '--timeout=180s'],
        undefined,
        200_000,
      );
    } catch (e) {
      console.log(kubectl(['get', 'pods,jobs', '-n', 'lab', '-o', 'wide']));
      console.log(
        kubectl(['get', 'events', '-n', 'lab', '--sort-by=.lastTimestamp']).split('\n').slice(-30).join('\n'),
      );
      throw e;
    }
    const completeMs = Date.now() - t;
    const pods = json(['get', 'pods', '-n', 'lab', '-l', 'job-name=squares']).items;
    expect(pods).toHaveLength(3);
    const outcomes = pods.map((p: Any) => {
      expect(p.status.phase).toBe('Succeeded');
      expect(p.spec.initContainers.map((c: Any) => [c.name, c.restartPolicy])).toEqual([
        ['tarn-sidecar', 'Always'],
      ]);
      expect(p.spec.containers[0].env).toContainEqual({ name: 'TARN_SIDECAR', value: '/run/tarn/tarn.sock' });
      // The sidecar was stopped once the step finished: the pod holds nothing running.
      expect(p.status.initContainerStatuses[0].state.terminated).toBeDefined();
      const step = p.status.containerStatuses[0].state.terminated;
      expect(step.exitCode).toBe(0);
      return JSON.parse(step.message);
    });
    for (const o of outcomes) expect(o.result.square).toBe(441);
    expect(outcomes.reduce((n: number, o: Any) => n + o.computed, 0)).toBe(1);
    // The operator's metrics: the Job's three pods were the only ones the API server sent (the
    // Deployment's pods never carry the storage label in their template; its injected ones are marked).
    const [operator] = json(['get', 'pods', '-n', 'tarn-system']).items;
    const metrics = node.exec(['curl', '-sf', '-m', '10', `http://${operator.status.podIP}:8081/metrics`]);
    expect(metrics).toMatch(/^tarn_webhook_admissions_total\{outcome="mutated"\} 3$/m);
    expect(metrics).toMatch(/^tarn_webhook_certificate_expiry_timestamp_seconds \d+/m);
    expect(metrics).toMatch(/^tarn_operator_reconciles_total\{result="ok"\} \d+/m);
    console.log(`kubectl apply → Job of 3 Complete: ${completeMs} ms`);
  }, 240_000);

  it('rolls the pods when the storage changes, and the sidecar leaves when the storage goes', () => {
    const before = appPods().map((p: Any) => p.metadata.name);
    kubectl([
      'patch',
      'tarnstorage',
      'lab',
      '-n',
      'lab',
      '--type=merge',
      '-p',
      '{"spec":{"sidecar":{"serve":{"hotCache":{"size":"8MiB"}}}}}',
    ]);
    const hash = () => json(['get', 'tarnstorage', 'lab', '-n', 'lab']).status.configHash;
    const diagnose = () => {
      try {
        console.log(kubectl(['get', 'pods,rs', '-n', 'lab', '-o', 'wide']));
        console.log(
          kubectl(['get', 'events', '-n', 'lab', '--sort-by=.lastTimestamp'])
            .split('\n')
            .slice(-25)
            .join('\n'),
        );
      } catch (e) {
        console.log(String(e));
      }
    };
    const deadline = Date.now() + 60_000;
    let storage = json(['get', 'tarnstorage', 'lab', '-n', 'lab']);
    while (storage.status.observedGeneration !== storage.metadata.generation && Date.now() < deadline)
      storage = json(['get', 'tarnstorage', 'lab', '-n', 'lab']);
    try {
      kubectl(['rollout', 'status', 'deployment/e2e', '-n', 'lab', '--timeout=120s'], undefined, 140_000);
    } catch (e) {
      diagnose();
      throw e;
    }
    const after = appPods();
    expect(after.map((p: Any) => p.metadata.name).some((n: string) => before.includes(n))).toBe(false);
    for (const p of after) expect(p.metadata.annotations['tarn.dev/config-hash']).toBe(hash());
    const cm = json(['get', 'configmap', 'tarn-lab', '-n', 'lab']);
    expect(cm.data['tarn.yaml']).toContain('size: 8MiB');

    kubectl(['delete', 'tarnstorage', 'lab', '-n', 'lab', '--wait=true', '--timeout=60s'], undefined, 70_000);
    try {
      kubectl(['rollout', 'status', 'deployment/e2e', '-n', 'lab', '--timeout=120s'], undefined, 140_000);
    } catch (e) {
      diagnose();
      throw e;
    }
    const deployment = json(['get', 'deployment', 'e2e', '-n', 'lab']);
    expect(deployment.spec.template.spec.initContainers).toBeUndefined();
    for (const p of appPods()) expect(p.spec.initContainers).toBeUndefined();
  }, 400_000);
});
