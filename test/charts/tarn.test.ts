import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { KubeConfig } from '@kubernetes/client-node';
import { Controller, Kube, SecretCertificates, silentLogger } from '@tarnjs/operator';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { available, binary } from '../bed/index.js';
import { kubeconfigYaml } from '../bed/kube.js';
import { type Kube as BedKube, startKube } from '../bed/services.js';
import { REPO } from '../helpers/spawn.js';
import { tempDir } from '../helpers/tmp.js';
import { eventually } from '../helpers/wait.js';
import { cacheSpec, labelledDeployment } from '../operator/fixtures.js';

const run = promisify(execFile);
const CHART = join(REPO, 'charts', 'tarn');
// biome-ignore lint/suspicious/noExplicitAny: the tests read whatever the API server answers
type Any = any;

const helm = (args: string[], env: Record<string, string> = {}) =>
  run(binary('helm'), args, {
    env: { ...process.env, HELM_CACHE_HOME: dir, HELM_CONFIG_HOME: dir, HELM_DATA_HOME: dir, ...env },
  });
const dir = tempDir('tarn-helm-');

describe.runIf(available('kube'))('the Helm chart', () => {
  it('lints, and its values schema refuses what the chart cannot do', async () => {
    const lint = await helm(['lint', CHART]);
    expect(lint.stdout).toContain('0 chart(s) failed');
    const bad = await helm(['template', 't', CHART, '--kube-version', '1.37.0', '--set', 'replicas=3']).catch(
      (e: Any) => e,
    );
    expect(String(bad.stderr)).toMatch(/replicas.*maximum/);
    const one = await helm([
      'template',
      't',
      CHART,
      '--kube-version',
      '1.37.0',
      '--set',
      'watchNamespace=lab',
    ]);
    const docs = parseAllDocuments(one.stdout).map((d) => d.toJS() as Any);
    expect(docs.map((d) => `${d.kind}/${d.metadata.name}`)).toEqual([
      'ServiceAccount/tarn-operator',
      'ClusterRole/tarn-operator-webhook',
      'ClusterRoleBinding/tarn-operator-webhook',
      'Role/tarn-operator',
      'Role/tarn-operator-webhook',
      'RoleBinding/tarn-operator',
      'RoleBinding/tarn-operator-webhook',
      'Service/tarn-operator-webhook',
      'Deployment/tarn-operator',
      'MutatingWebhookConfiguration/tarn-operator',
    ]);
    // Watching one namespace, the webhook sees only its pods (and never the operator's own).
    const mwc = docs.find((d) => d.kind === 'MutatingWebhookConfiguration');
    expect(mwc.webhooks.map((w: Any) => [w.name, w.failurePolicy, w.timeoutSeconds])).toEqual([
      ['pods.tarn.dev', 'Fail', 5],
      ['optional-pods.tarn.dev', 'Ignore', 5],
    ]);
    expect(mwc.webhooks[0].namespaceSelector.matchExpressions).toEqual([
      { key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: ['default', 'kube-system'] },
      { key: 'kubernetes.io/metadata.name', operator: 'In', values: ['lab'] },
    ]);
    expect(mwc.webhooks[0].clientConfig.caBundle).toBeUndefined();
  });

  it('renders cert-manager’s Issuer and Certificate instead of the operator’s own CA when asked, and no webhook when off', async () => {
    const docs = async (...set: string[]) =>
      parseAllDocuments(
        (
          await helm([
            'template',
            't',
            CHART,
            '--kube-version',
            '1.37.0',
            ...set.flatMap((x) => ['--set', x]),
          ])
        ).stdout,
      ).map((d) => d.toJS() as Any);
    const cm = await docs('webhook.certManager.enabled=true');
    const kinds = cm.map((d) => d.kind);
    expect(kinds).toContain('Issuer');
    expect(kinds).toContain('Certificate');
    expect(cm.filter((d) => d.metadata.name === 'tarn-operator-webhook').map((d) => d.kind)).toEqual([
      'Service',
      'Certificate',
    ]);
    const mwc = cm.find((d) => d.kind === 'MutatingWebhookConfiguration');
    expect(mwc.metadata.annotations).toEqual({
      'cert-manager.io/inject-ca-from': 'default/tarn-operator-webhook-ca',
    });
    const op = cm.find((d) => d.kind === 'Deployment').spec.template.spec;
    expect(op.containers[0].args).toEqual(
      expect.arrayContaining(['--webhook-cert-dir', '/etc/tarn-webhook']),
    );
    expect(op.containers[0].args).not.toContain('--webhook-config');
    expect(op.volumes).toEqual([{ name: 'webhook-cert', secret: { secretName: 'tarn-webhook-cert' } }]);

    const off = await docs('webhook.enabled=false');
    expect(off.map((d) => d.kind)).not.toContain('MutatingWebhookConfiguration');
    expect(off.find((d) => d.kind === 'Deployment').spec.template.spec.containers[0].args).not.toContain(
      '--webhook-port',
    );
    const bad = await helm(['template', 't', CHART, '--set', 'webhook.failurePolicy=Maybe']).catch(
      (e: Any) => e,
    );
    expect(String(bad.stderr)).toMatch(/failurePolicy/);
  });

  describe('installed on a real API server', () => {
    let bed: BedKube;
    let admin: Kube;
    beforeAll(async () => {
      bed = await startKube();
      const config = new KubeConfig();
      config.loadFromFile(bed.kubeconfigPath);
      admin = await Kube.from(config);
    }, 180_000);
    afterAll(async () => {
      await admin?.close();
      await bed?.stop();
    });

    it('helm install creates the CRD, the RBAC and the operator; its service account may do exactly the operator’s work', async () => {
      await helm([
        'install',
        'tarn',
        CHART,
        '--namespace',
        'tarn-system',
        '--create-namespace',
        '--kubeconfig',
        bed.kubeconfigPath,
        '--set',
        'sidecarImage.tag=test',
      ]);
      const crd = await eventually(async () => {
        const c = await admin.get<Any>(
          '/apis/apiextensions.k8s.io/v1/customresourcedefinitions/tarnstorages.tarn.dev',
        );
        return c.status?.conditions?.some((x: Any) => x.type === 'Established' && x.status === 'True')
          ? c
          : undefined;
      });
      expect(crd.spec.names.shortNames).toEqual(['tarn', 'ts']);
      const op = await admin.get<Any>('/apis/apps/v1/namespaces/tarn-system/deployments/tarn-operator');
      const container = op.spec.template.spec.containers[0];
      expect(container.args).toEqual([
        '--image',
        'localhost/tarn-sidecar:test',
        '--workers',
        '2',
        '--log-level',
        'info',
        '--health-port',
        '8081',
        '--webhook-port',
        '9443',
        '--webhook-service',
        'tarn-operator-webhook',
        '--webhook-timeout',
        '5s',
        '--webhook-config',
        'tarn-operator',
        '--webhook-ca-validity',
        '365d',
        '--webhook-cert-validity',
        '720h',
      ]);
      expect(container.securityContext).toMatchObject({
        readOnlyRootFilesystem: true,
        allowPrivilegeEscalation: false,
      });

      // The operator as its service account: a token from the TokenRequest API, nothing more.
      const token = await admin.create<Any>(
        '/api/v1/namespaces/tarn-system/serviceaccounts/tarn-operator/token',
        {
          apiVersion: 'authentication.k8s.io/v1',
          kind: 'TokenRequest',
          spec: { expirationSeconds: 3600 },
        },
      );
      const kubeconfig = join(dir, 'operator.kubeconfig');
      writeFileSync(
        kubeconfig,
        kubeconfigYaml({ server: bed.server, caPath: bed.caPath, token: token.status.token }),
      );
      const config = new KubeConfig();
      config.loadFromFile(kubeconfig);
      const asOperator = await Kube.from(config);
      const can = async (verb: string, resource: string, group = '', at: Any = { namespace: 'lab' }) =>
        (
          await asOperator.create<Any>('/apis/authorization.k8s.io/v1/selfsubjectaccessreviews', {
            apiVersion: 'authorization.k8s.io/v1',
            kind: 'SelfSubjectAccessReview',
            spec: { resourceAttributes: { verb, resource, group, ...at } },
          })
        ).status.allowed;
      expect(await can('patch', 'deployments', 'apps')).toBe(true);
      expect(await can('watch', 'tarnstorages', 'tarn.dev')).toBe(true);
      expect(await can('get', 'secrets')).toBe(false);
      expect(await can('create', 'pods')).toBe(false);
      expect(await can('delete', 'deployments', 'apps')).toBe(false);
      // The webhook's certificate: its own Secret, and the caBundle of its own configuration only.
      const own = { namespace: 'tarn-system', name: 'tarn-webhook-cert' };
      expect(await can('update', 'secrets', '', own)).toBe(true);
      expect(await can('get', 'secrets', '', { ...own, name: 'other' })).toBe(false);
      const mwc = 'mutatingwebhookconfigurations';
      expect(await can('patch', mwc, 'admissionregistration.k8s.io', { name: 'tarn-operator' })).toBe(true);
      expect(await can('patch', mwc, 'admissionregistration.k8s.io', { name: 'istio' })).toBe(false);
      // ...which is all it needs to make its CA and publish it.
      const certificates = new SecretCertificates({
        kube: asOperator,
        log: silentLogger,
        namespace: 'tarn-system',
        secret: 'tarn-webhook-cert',
        webhookConfig: 'tarn-operator',
        hosts: ['tarn-operator-webhook.tarn-system.svc'],
        caValidityMs: 86_400_000,
        certValidityMs: 3_600_000,
        overlapMs: 1000,
      });
      const served = await certificates.sync();
      expect(served.certificate).toContain('BEGIN CERTIFICATE');
      const webhooks = await admin.get<Any>(
        '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/tarn-operator',
      );
      const ca = Buffer.from(webhooks.webhooks[0].clientConfig.caBundle, 'base64').toString();
      expect(new X509Certificate(served.certificate).checkIssued(new X509Certificate(ca))).toBe(true);

      await admin.create('/api/v1/namespaces', {
        apiVersion: 'v1',
        kind: 'Namespace',
        metadata: { name: 'lab' },
      });
      await admin.create('/apis/apps/v1/namespaces/lab/deployments', labelledDeployment('web', 'cache'));
      await eventually(() => admin.list('/apis/tarn.dev/v1alpha1/namespaces/lab/tarnstorages'));
      await admin.create('/apis/tarn.dev/v1alpha1/namespaces/lab/tarnstorages', {
        apiVersion: 'tarn.dev/v1alpha1',
        kind: 'TarnStorage',
        metadata: { name: 'cache' },
        spec: cacheSpec,
      });
      const stop = new AbortController();
      const controller = new Controller({
        kube: asOperator,
        image: 'localhost/tarn-sidecar:test',
        log: silentLogger,
      });
      const running = controller.run(stop.signal);
      try {
        const s = await eventually(async () => {
          const x = await admin.get<Any>('/apis/tarn.dev/v1alpha1/namespaces/lab/tarnstorages/cache');
          return x.status?.conditions?.[0]?.status === 'True' ? x : undefined;
        });
        expect(s.status.workloads).toEqual(['Deployment/web']);
        const web = await admin.get<Any>('/apis/apps/v1/namespaces/lab/deployments/web');
        expect(web.spec.template.spec.initContainers[0].image).toBe('localhost/tarn-sidecar:test');
      } finally {
        stop.abort();
        await running;
        await asOperator.close();
      }
    }, 120_000);

    it('helm uninstall removes the operator and keeps the CRD (and so every storage), as Helm keeps crds/', async () => {
      await helm(['uninstall', 'tarn', '--namespace', 'tarn-system', '--kubeconfig', bed.kubeconfigPath]);
      await eventually(async () =>
        (await admin.find('/apis/apps/v1/namespaces/tarn-system/deployments/tarn-operator')) === undefined
          ? true
          : undefined,
      );
      expect(
        await admin.find('/apis/apiextensions.k8s.io/v1/customresourcedefinitions/tarnstorages.tarn.dev'),
      ).toBeDefined();
      expect(
        await admin.find('/apis/rbac.authorization.k8s.io/v1/clusterroles/tarn-operator'),
      ).toBeUndefined();
    });
  });
});
