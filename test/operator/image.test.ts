// The operator image (operator/Dockerfile), built here by scripts/image.sh with buildah, unpacked by
// umoci and run by runc as the chart runs it: uid 65532, read-only root filesystem, every
// capability dropped, no privilege escalation. Against the bed's API server (the host's network,
// for loopback), it reconciles a storage and injects the sidecar, and stops on SIGTERM.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { Kube } from '@tarnjs/operator';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  buildImage,
  IMAGE_UID,
  imageAvailable,
  restrictBundle,
  runBundleOnce,
  type SidecarImage,
  startBundle,
  unpackSidecarImage,
} from '../bed/image.js';
import { available } from '../bed/index.js';
import { kubeconfigYaml } from '../bed/kube.js';
import { type Kube as BedKube, startKube } from '../bed/services.js';
import { tempDir } from '../helpers/tmp.js';
import { eventually } from '../helpers/wait.js';
import { cacheSpec, installCrd, labelledDeployment } from './fixtures.js';

const MB = 1e6;
// biome-ignore lint/suspicious/noExplicitAny: the tests read whatever the API server answers
type Any = any;

describe.runIf(imageAvailable() && available('kube'))('the operator image', () => {
  let image: SidecarImage;
  let bed: BedKube;
  let kube: Kube;
  const dir = tempDir('tarn-operator-image-');

  beforeAll(async () => {
    [image, bed] = await Promise.all([buildImage('operator'), startKube()]);
    const config = new KubeConfig();
    config.loadFromFile(bed.kubeconfigPath);
    kube = await Kube.from(config);
    const bundle = unpackSidecarImage(image, join(dir, 'bundle'));
    console.log(
      `operator image ${image.image}: archive ${(image.archiveBytes / MB).toFixed(1)} MB, ` +
        `unpacked ${(bundle.rootfsBytes / MB).toFixed(1)} MB; build ${(image.ms / 1000).toFixed(1)} s (${image.built ? 'built' : 'cached'})`,
    );
  }, 900_000);
  afterAll(async () => {
    await kube?.close();
    await bed?.stop();
  });

  it('prints its usage, restricted and with no network', () => {
    const bundle = unpackSidecarImage(image, join(dir, 'help'));
    restrictBundle(bundle, { args: ['--help'], network: 'none' });
    const r = runBundleOnce(bundle, join(dir, 'help-state'));
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('usage: tarn-operator');
  });

  it('reconciles a storage on the API server as uid 65532 with a read-only root, and stops on SIGTERM', async () => {
    await installCrd(kube, ['img']);
    await kube.create('/apis/apps/v1/namespaces/img/deployments', labelledDeployment('web', 'cache'));
    // The kubeconfig as a pod would have it: everything inline, mounted read-only.
    const kubeDir = join(dir, 'kube');
    const { mkdirSync, chmodSync } = await import('node:fs');
    mkdirSync(kubeDir);
    const ca = readFileSync(bed.caPath).toString('base64');
    writeFileSync(
      join(kubeDir, 'kubeconfig'),
      kubeconfigYaml({ server: bed.server, caData: ca, token: bed.token }),
    );
    chmodSync(join(kubeDir, 'kubeconfig'), 0o644);
    const bundle = unpackSidecarImage(image, join(dir, 'run'));
    restrictBundle(bundle, {
      args: [
        '--kubeconfig',
        '/etc/tarn-kube/kubeconfig',
        '--image',
        'localhost/tarn-sidecar:img',
        '--health-port',
        '0',
      ],
      network: 'host',
      mounts: [{ source: kubeDir, destination: '/etc/tarn-kube', readonly: true }],
    });
    const stateDir = join(dir, 'run-state');
    // Ready once it logs that its controller runs (the health port is off: no port on the host).
    const running = await startBundle(bundle, stateDir, async () => {
      const { readdirSync } = await import('node:fs');
      const log = readdirSync(stateDir).find((f) => f.endsWith('.log'));
      return log !== undefined && readFileSync(join(stateDir, log), 'utf8').includes('controller started');
    });
    try {
      const status = readFileSync(`/proc/${running.hostPid()}/status`, 'utf8');
      expect(status).toMatch(new RegExp(`^Uid:\\s+${IMAGE_UID}\\s`, 'm'));
      expect(status).toMatch(/^CapEff:\s+0+$/m);
      await kube.create('/apis/tarn.dev/v1alpha1/namespaces/img/tarnstorages', {
        apiVersion: 'tarn.dev/v1alpha1',
        kind: 'TarnStorage',
        metadata: { name: 'cache' },
        spec: cacheSpec,
      });
      const web = await eventually(async () => {
        const d = await kube.get<Any>('/apis/apps/v1/namespaces/img/deployments/web');
        return d.spec.template.spec.initContainers ? d : undefined;
      }, 60_000);
      expect(web.spec.template.spec.initContainers[0].image).toBe('localhost/tarn-sidecar:img');
    } finally {
      await running.stop();
    }
    const log = readFileSync(running.log, 'utf8');
    expect(log).toContain('"msg":"tarn-operator stopped"');
  }, 120_000);
});
