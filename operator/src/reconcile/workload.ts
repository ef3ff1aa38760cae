import type { CallOptions, Kube, KubeObject } from '../kube/client.js';
import { INJECTED_LABEL } from '../names.js';
import type { PodTemplateAdditions } from '../pod-additions.js';
import { objectPath, type Resource } from '../resources.js';

/** A workload as the operator reads it: enough of it to find its pod's containers. */
export interface Workload extends KubeObject {
  spec?: { template?: { spec?: { containers?: Array<{ name?: string }> } } };
}

/** `Deployment/web`: how status.workloads names a workload. */
export const workloadName = (r: Resource, w: KubeObject) => `${r.kind}/${w.metadata?.name ?? ''}`;

/**
 * Gives a workload the storage's pod additions, by server-side apply under the operator's field
 * manager: the operator owns exactly these fields (and the `tarn.dev/injected` label that finds the
 * workload again if its opt-in label goes), a user's own apply of the same workload keeps them,
 * and a second apply of the same additions changes nothing (no new ReplicaSet, no roll).
 */
export async function inject(
  kube: Kube,
  r: Resource,
  workload: Workload,
  storage: string,
  additions: PodTemplateAdditions,
  options?: CallOptions,
): Promise<void> {
  const { name, namespace } = workload.metadata ?? {};
  const path = objectPath(r, namespace as string, name as string);
  await unlessGone(kube, path, options, () =>
    kube.apply(
      path,
      {
        apiVersion: r.apiVersion,
        kind: r.kind,
        metadata: { name, namespace, labels: { [INJECTED_LABEL]: storage } },
        spec: { template: additions },
      },
      // Forced: these fields are the operator's by definition (a user who set an env named
      // TARN_SIDECAR by hand loses it to the operator rather than blocking every reconcile).
      { ...options, force: true },
    ),
  );
}

/**
 * Runs an apply of an existing workload. An apply of an object that was deleted meanwhile would
 * try to create it from the operator's fields alone, which the API server refuses: then the
 * workload is gone, and so is the work.
 */
async function unlessGone(
  kube: Kube,
  path: string,
  options: CallOptions | undefined,
  apply: () => Promise<unknown>,
) {
  try {
    await apply();
  } catch (e) {
    if ((await kube.find(path, options)) === undefined) return;
    throw e;
  }
}

/**
 * Takes back everything `inject` added: an apply with no fields makes the field manager own
 * nothing, so the API server removes each field it owned alone, and nothing else.
 */
export async function eject(
  kube: Kube,
  r: Resource,
  workload: Workload,
  options?: CallOptions,
): Promise<void> {
  const { name, namespace } = workload.metadata ?? {};
  const path = objectPath(r, namespace as string, name as string);
  await unlessGone(kube, path, options, () =>
    kube.apply(
      path,
      { apiVersion: r.apiVersion, kind: r.kind, metadata: { name, namespace } },
      { ...options, force: true },
    ),
  );
}
