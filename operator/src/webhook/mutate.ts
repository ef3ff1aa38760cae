import type { KubeObject } from '../kube/client.js';
import { OPTIONAL_LABEL, SIDECAR_CONTAINER, STORAGE_LABEL } from '../names.js';
import { appContainersOf, type PodTemplateAdditions, podAdditions } from '../pod-additions.js';
import type { TarnStorage } from '../reconcile/storage.js';
import { render } from '../render.js';
import { InvalidSpecError, validateSpec } from '../validate.js';

/** A pod as admission sees it: enough of it to extend. */
export interface Pod extends KubeObject {
  spec?: {
    containers?: Array<{ name?: string; env?: Array<{ name?: string }>; volumeMounts?: unknown[] }>;
    initContainers?: Array<{ name?: string }>;
    volumes?: Array<{ name?: string }>;
    [field: string]: unknown;
  };
}

/** One RFC 6902 operation. */
export interface PatchOperation {
  op: 'add' | 'replace';
  path: string;
  value: unknown;
}

/** What admission answers for one pod. */
export type Decision =
  | { allowed: true; patch?: PatchOperation[]; warnings?: string[] }
  | { allowed: false; code: number; reason: string; message: string };

export interface MutateContext {
  /** The TarnStorage of that name in that namespace, or undefined when there is none; throws when it cannot tell. */
  storage(namespace: string, name: string): Promise<TarnStorage | undefined>;
  /** The sidecar image of storages that name none. */
  image: string;
}

// A DNS-1123 subdomain, as a TarnStorage's name is.
const NAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

/**
 * The admission of one pod being created in `namespace`:
 *
 * 1. not labelled `tarn.dev/storage` (the webhook's objectSelector already keeps those away): admitted as it is;
 * 2. already carrying the sidecar (a Deployment's pod, extended in its template): admitted as it is;
 * 3. the storage is read; missing, not Ready, or its spec no longer renders: refused, saying why
 *    and what to do, unless the pod is labelled `tarn.dev/optional: "true"` (then admitted
 *    unchanged, with a warning the client shows);
 * 4. the pod additions (pod-additions.ts, the same function the workload path applies) become a
 *    JSON Patch that only adds: nothing the user wrote is changed, except a TARN_SIDECAR they set.
 */
export async function mutatePod(pod: Pod, namespace: string, ctx: MutateContext): Promise<Decision> {
  const labels = pod.metadata?.labels ?? {};
  const storageName = labels[STORAGE_LABEL];
  // 1.
  if (storageName === undefined) return { allowed: true };
  // 2.
  if ((pod.spec?.initContainers ?? []).some((c) => c.name === SIDECAR_CONTAINER)) return { allowed: true };
  const optional = labels[OPTIONAL_LABEL] === 'true';
  const refuse = (reason: string, message: string): Decision =>
    optional
      ? { allowed: true, warnings: [`${message}; admitted without the sidecar (${OPTIONAL_LABEL}=true)`] }
      : {
          allowed: false,
          code: 403,
          reason,
          message: `${message}. Fix the storage, or label the pod ${OPTIONAL_LABEL}=true to run it without the sidecar`,
        };
  const which = `TarnStorage ${namespace}/${storageName}`;
  // 3.
  if (!NAME.test(storageName))
    return refuse('InvalidLabel', `tarn: ${STORAGE_LABEL}=${storageName} is not a valid name`);
  let storage: TarnStorage | undefined;
  try {
    storage = await ctx.storage(namespace, storageName);
  } catch (e) {
    return refuse('StorageUnreadable', `tarn: cannot read ${which}: ${(e as Error).message}`);
  }
  if (!storage)
    return refuse(
      'StorageNotFound',
      `tarn: ${which} does not exist (the pod is labelled ${STORAGE_LABEL}=${storageName})`,
    );
  if (storage.metadata?.deletionTimestamp)
    return refuse('StorageDeleting', `tarn: ${which} is being deleted`);
  const ready = storage.status?.conditions?.find((c) => c.type === 'Ready');
  if (ready?.status !== 'True')
    return refuse(
      'StorageNotReady',
      `tarn: ${which} is not Ready${ready ? ` (${ready.reason}: ${ready.message})` : ' (not reconciled yet)'}`,
    );
  let additions: PodTemplateAdditions;
  try {
    const spec = validateSpec(storage.spec);
    additions = podAdditions({
      storage: storageName,
      spec,
      rendered: render(spec),
      defaultImage: ctx.image,
      containers: appContainersOf(pod.spec),
    });
  } catch (e) {
    if (!(e instanceof InvalidSpecError)) throw e;
    return refuse('InvalidSpec', `tarn: ${which} has an invalid spec: ${e.message}`);
  }
  // 4.
  const clash = clashOf(pod, additions);
  if (clash) return { allowed: false, code: 422, reason: 'Conflict', message: `tarn: ${clash}` };
  return { allowed: true, patch: patchFor(pod, additions) };
}

/** A name or path the pod already uses for something the operator adds: refused rather than overwritten. */
function clashOf(pod: Pod, additions: PodTemplateAdditions): string | undefined {
  const volumes = new Set((pod.spec?.volumes ?? []).map((v) => v.name));
  for (const v of additions.spec.volumes)
    if (volumes.has(v.name as string)) return `the pod already has a volume named ${v.name as string}`;
  for (const added of additions.spec.containers) {
    const c = (pod.spec?.containers ?? []).find((x) => x.name === added.name);
    const paths = new Set(
      ((c?.volumeMounts ?? []) as Array<{ mountPath?: unknown }>).map((m) =>
        String(m.mountPath).replace(/\/+$/, ''),
      ),
    );
    for (const m of added.volumeMounts as Array<{ mountPath: string }>)
      if (paths.has(m.mountPath))
        return `container ${added.name as string} already mounts something at ${m.mountPath}`;
  }
  return undefined;
}

/** `/` and `~` escaped, as a JSON Pointer's token. */
const token = (s: string) => s.replace(/~/g, '~0').replace(/\//g, '~1');

/**
 * Additions as a JSON Patch against this pod: arrays that are absent are added whole, others get
 * items appended (`-`), so the user's items keep their places: the sidecar goes after the pod's
 * own init containers.
 */
export function patchFor(pod: Pod, additions: PodTemplateAdditions): PatchOperation[] {
  const ops: PatchOperation[] = [];
  const appendAll = (path: string, present: unknown[] | undefined, items: unknown[]) => {
    if (present === undefined) ops.push({ op: 'add', path, value: items });
    else for (const item of items) ops.push({ op: 'add', path: `${path}/-`, value: item });
  };
  for (const field of ['labels', 'annotations'] as const) {
    const wanted = additions.metadata[field];
    if (pod.metadata?.[field] === undefined)
      ops.push({ op: 'add', path: `/metadata/${field}`, value: wanted });
    else
      for (const [k, v] of Object.entries(wanted))
        ops.push({ op: 'add', path: `/metadata/${field}/${token(k)}`, value: v });
  }
  appendAll('/spec/initContainers', pod.spec?.initContainers, additions.spec.initContainers);
  const containers = pod.spec?.containers ?? [];
  for (const added of additions.spec.containers) {
    const i = containers.findIndex((c) => c.name === added.name);
    const c = containers[i];
    if (!c) continue;
    const env = added.env as Array<{ name: string }>;
    const existing = c.env ?? [];
    const fresh = env.filter((e) => {
      // The operator's variable wins over one set by hand (every one of that name: the last
      // would be the one that counts), as the workload path's forced apply does.
      let found = false;
      existing.forEach((x, j) => {
        if (x.name !== e.name) return;
        ops.push({ op: 'replace', path: `/spec/containers/${i}/env/${j}`, value: e });
        found = true;
      });
      return !found;
    });
    appendAll(`/spec/containers/${i}/env`, c.env, fresh);
    appendAll(`/spec/containers/${i}/volumeMounts`, c.volumeMounts, added.volumeMounts as unknown[]);
  }
  appendAll('/spec/volumes', pod.spec?.volumes, additions.spec.volumes);
  return ops;
}
