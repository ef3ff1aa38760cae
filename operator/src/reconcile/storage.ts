import { type CallOptions, isConflict, type Kube, type KubeObject } from '../kube/client.js';
import {
  API_VERSION,
  CONFIG_FILE,
  configMapName,
  FINALIZER,
  INJECTED_LABEL,
  KIND,
  MANAGED_BY_LABEL,
  MANAGER,
  STORAGE_LABEL,
} from '../names.js';
import { appContainersOf, podAdditions } from '../pod-additions.js';
import { type Rendered, render } from '../render.js';
import { CONFIG_MAPS, EVENTS, objectPath, type Resource, STORAGES, WORKLOADS } from '../resources.js';
import type { StorageNode, StorageSpec } from '../spec.js';
import { InvalidSpecError, kindOf, validateSpec } from '../validate.js';
import { eject, inject, type Workload, workloadName } from './workload.js';

/** A TarnStorage as read from the API server. */
export interface TarnStorage extends KubeObject {
  spec?: unknown;
  status?: { conditions?: Condition[]; [field: string]: unknown };
}

export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  observedGeneration?: number;
  lastTransitionTime: string;
  reason: string;
  message: string;
}

export interface ReconcileContext {
  kube: Kube;
  /** The sidecar image a spec that names none gets. */
  image: string;
  now?: () => Date;
}

export interface Key {
  namespace: string;
  name: string;
}

/** What the controller does next with the key: nothing (until something changes), or look again later. */
export interface ReconcileResult {
  requeueAfterMs?: number;
}

/**
 * Makes the world match one TarnStorage, reading all of it each time (level-triggered: an event only
 * says which storage to look at, never what changed), and writing only the difference (server-side
 * apply: an apply that changes nothing is a no-op). The steps:
 *
 * 1. read the storage; gone: take the sidecar out of any workload still marked with it;
 * 2. being deleted: take the sidecar out of every workload, then drop the finalizer;
 * 3. make sure the finalizer is there, so a delete waits for step 2;
 * 4. check and render the spec; an invalid one is terminal: Ready=False, an Event, no retry
 *    (the last good ConfigMap and sidecars stay) until the object changes;
 * 5. apply the ConfigMap with the sidecar config (owned by the storage: garbage collected with it);
 * 6. apply the pod additions to every workload labelled `tarn.dev/storage: <name>`, and take them
 *    back from workloads marked injected that no longer are labelled;
 * 7. report: Ready, the config hash, the workloads that carry the sidecar.
 *
 * A failure of a call throws: the controller retries the key with backoff.
 */
export async function reconcileStorage(
  ctx: ReconcileContext,
  key: Key,
  options: CallOptions = {},
): Promise<ReconcileResult> {
  const { kube } = ctx;
  const path = objectPath(STORAGES, key.namespace, key.name);
  // 1.
  const storage = await kube.find<TarnStorage>(path, options);
  if (!storage) {
    await ejectAll(ctx, key, new Set(), options);
    return {};
  }
  // 2.
  if (storage.metadata?.deletionTimestamp) {
    await ejectAll(ctx, key, new Set(), options);
    await dropFinalizer(kube, path, storage, options);
    return {};
  }
  // 3.
  let current = storage;
  if (!(storage.metadata?.finalizers ?? []).includes(FINALIZER)) {
    current = await kube.merge<TarnStorage>(
      path,
      {
        metadata: {
          resourceVersion: storage.metadata?.resourceVersion,
          finalizers: [...(storage.metadata?.finalizers ?? []), FINALIZER],
        },
      },
      options,
    );
  }
  // 4.
  let spec: StorageSpec;
  let rendered: Rendered;
  try {
    spec = validateSpec(storage.spec);
    rendered = render(spec);
  } catch (e) {
    if (!(e instanceof InvalidSpecError)) throw e;
    const before = current.status?.conditions?.find((c) => c.type === 'Ready');
    await setStatus(ctx, path, current, { ready: false, reason: 'InvalidSpec', message: e.message }, options);
    // One Event per new problem, not one per resync.
    if (!(before?.reason === 'InvalidSpec' && before.message === e.message))
      await event(ctx, current, 'Warning', 'InvalidSpec', e.message, options);
    return {};
  }
  // 5.
  await kube.apply(
    objectPath(CONFIG_MAPS, key.namespace, configMapName(key.name)),
    {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: {
        name: configMapName(key.name),
        namespace: key.namespace,
        labels: { [MANAGED_BY_LABEL]: MANAGER, [INJECTED_LABEL]: key.name },
        ownerReferences: [
          {
            apiVersion: API_VERSION,
            kind: KIND,
            name: key.name,
            uid: current.metadata?.uid,
            controller: true,
            blockOwnerDeletion: true,
          },
        ],
      },
      data: { [CONFIG_FILE]: rendered.yaml },
    },
    { ...options, force: true },
  );
  // 6.
  const carrying: string[] = [];
  const keep = new Set<string>();
  for (const r of WORKLOADS) {
    const labelled = await kube.list<Workload>(
      r.collection(key.namespace),
      { labelSelector: `${STORAGE_LABEL}=${key.name}` },
      options,
    );
    for (const w of labelled.items) {
      const additions = podAdditions({
        storage: key.name,
        spec,
        rendered,
        defaultImage: ctx.image,
        containers: appContainersOf(w.spec?.template?.spec),
      });
      await inject(kube, r, w, key.name, additions, options);
      carrying.push(workloadName(r, w));
      keep.add(`${r.kind}/${w.metadata?.uid}`);
    }
  }
  await ejectAll(ctx, key, keep, options);
  // 7.
  await setStatus(
    ctx,
    path,
    current,
    {
      ready: true,
      reason: 'Reconciled',
      message: `config ${rendered.hash} in ConfigMap ${configMapName(key.name)}; the sidecar is in ${carrying.length} workload(s)`,
      configHash: rendered.hash,
      root: `${kindOf(spec.nodes.find((n) => n.name === spec.root) as StorageNode)}/${spec.root}`,
      workloads: carrying.sort(),
    },
    options,
  );
  return {};
}

/** Takes the sidecar out of every workload marked injected by this storage, except those in `keep`. */
async function ejectAll(
  ctx: ReconcileContext,
  key: Key,
  keep: ReadonlySet<string>,
  options: CallOptions,
): Promise<void> {
  for (const r of WORKLOADS) {
    const marked = await ctx.kube.list<Workload>(
      r.collection(key.namespace),
      { labelSelector: `${INJECTED_LABEL}=${key.name}` },
      options,
    );
    for (const w of marked.items)
      if (!keep.has(`${r.kind}/${w.metadata?.uid}`)) await eject(ctx.kube, r as Resource, w, options);
  }
}

async function dropFinalizer(
  kube: Kube,
  path: string,
  storage: TarnStorage,
  options: CallOptions,
): Promise<void> {
  const finalizers = storage.metadata?.finalizers ?? [];
  if (!finalizers.includes(FINALIZER)) return;
  try {
    // The resourceVersion makes it a compare-and-swap: another finalizer added meanwhile is not lost.
    await kube.merge(
      path,
      {
        metadata: {
          resourceVersion: storage.metadata?.resourceVersion,
          finalizers: finalizers.filter((f) => f !== FINALIZER),
        },
      },
      options,
    );
  } catch (e) {
    if (!isConflict(e)) throw e;
    throw new Error('the storage changed while its finalizer was removed; retrying');
  }
}

interface StatusUpdate {
  ready: boolean;
  reason: string;
  message: string;
  configHash?: string;
  root?: string;
  workloads?: string[];
}

/** Writes the status (server-side apply on the status subresource); a condition keeps its transition time while its status stays. */
async function setStatus(
  ctx: ReconcileContext,
  path: string,
  storage: TarnStorage,
  update: StatusUpdate,
  options: CallOptions,
) {
  const now = (ctx.now ?? (() => new Date()))();
  const status = update.ready ? 'True' : 'False';
  const previous = storage.status?.conditions?.find((c) => c.type === 'Ready');
  const ready: Condition = {
    type: 'Ready',
    status,
    observedGeneration: storage.metadata?.generation,
    lastTransitionTime:
      previous?.status === status ? previous.lastTransitionTime : now.toISOString().replace(/\.\d+Z$/, 'Z'),
    reason: update.reason,
    message: update.message.slice(0, 32_000),
  };
  const body: Record<string, unknown> = {
    observedGeneration: storage.metadata?.generation,
    conditions: [ready],
  };
  if (update.configHash !== undefined) {
    body.configHash = update.configHash;
    body.configMap = configMapName(storage.metadata?.name ?? '');
  }
  if (update.root !== undefined) body.root = update.root;
  if (update.workloads !== undefined) {
    body.workloads = update.workloads;
    body.injected = update.workloads.length;
  }
  await ctx.kube.apply(
    `${path}/status`,
    {
      apiVersion: API_VERSION,
      kind: KIND,
      metadata: { name: storage.metadata?.name, namespace: storage.metadata?.namespace },
      status: body,
    },
    { ...options, force: true },
  );
}

/** A core Event on the storage (what `kubectl describe` shows). Best effort: an event never fails a reconcile. */
async function event(
  ctx: ReconcileContext,
  storage: TarnStorage,
  type: 'Normal' | 'Warning',
  reason: string,
  message: string,
  options: CallOptions,
): Promise<void> {
  const now = (ctx.now ?? (() => new Date()))().toISOString();
  const namespace = storage.metadata?.namespace as string;
  await ctx.kube
    .create(
      EVENTS.collection(namespace),
      {
        apiVersion: 'v1',
        kind: 'Event',
        metadata: { generateName: `${storage.metadata?.name}.`, namespace },
        involvedObject: {
          apiVersion: API_VERSION,
          kind: KIND,
          name: storage.metadata?.name,
          namespace,
          uid: storage.metadata?.uid,
          resourceVersion: storage.metadata?.resourceVersion,
        },
        type,
        reason,
        message: message.slice(0, 1024),
        source: { component: MANAGER },
        firstTimestamp: now,
        lastTimestamp: now,
        count: 1,
      },
      options,
    )
    .catch(() => undefined);
}
