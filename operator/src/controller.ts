import { setMaxListeners } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { isGone, type Kube, type KubeObject } from './kube/client.js';
import type { Logger } from './log.js';
import type { OperatorObserver } from './metrics.js';
import { INJECTED_LABEL, MANAGED_BY_LABEL, MANAGER, STORAGE_LABEL } from './names.js';
import { WorkQueue } from './queue.js';
import { type Key, reconcileStorage } from './reconcile/storage.js';
import { CONFIG_MAPS, type Resource, STORAGES, WORKLOADS } from './resources.js';

export interface ControllerOptions {
  kube: Kube;
  /** The sidecar image for storages that name none. */
  image: string;
  log: Logger;
  /** Watch this namespace only (default: every namespace). */
  namespace?: string;
  /** Keys reconciled at once (default 2). */
  workers?: number;
  /** Every storage is reconciled again this often, whatever the events (default 10 min). */
  resyncMs?: number;
  /** Told of every reconcile (the operator's metrics). */
  observer?: Pick<OperatorObserver, 'reconciled'>;
}

const keyOf = (namespace: string, name: string) => `${namespace}/${name}`;
const parseKey = (key: string): Key => {
  const slash = key.indexOf('/');
  return { namespace: key.slice(0, slash), name: key.slice(slash + 1) };
};

/**
 * The wiring, apart from the logic (reconcile/storage.ts): watches that turn events into keys of
 * TarnStorages, the queue, and the workers. Every event only names a storage to look at:
 * - a TarnStorage: itself;
 * - a ConfigMap the operator manages: the storage that owns it (someone edited or deleted it);
 * - a Deployment, StatefulSet or DaemonSet labelled `tarn.dev/storage` (opted in) or
 *   `tarn.dev/injected` (carrying a sidecar): the storage its label names.
 * A watch that fails or ends is restarted, from a fresh list after an error or a 410 Gone; every
 * storage is queued again on each list and every `resyncMs`.
 */
export class Controller {
  readonly queue = new WorkQueue();
  readonly #o: Required<Omit<ControllerOptions, 'namespace' | 'observer'>> &
    Pick<ControllerOptions, 'namespace' | 'observer'>;
  #synced = 0;
  readonly #watches: number;

  constructor(options: ControllerOptions) {
    this.#o = { workers: 2, resyncMs: 600_000, ...options };
    this.#watches = 2 + WORKLOADS.length * 2;
  }

  /** True once every watch has listed once (the operator's readiness). */
  get synced(): boolean {
    return this.#synced >= this.#watches;
  }

  /** Runs until the signal fires; resolves once every worker and watch has stopped. */
  async run(outer: AbortSignal): Promise<void> {
    const { log } = this.#o;
    // Every watch and every call in flight listens on one signal: more than Node's default 10
    // listeners by design, not a leak. A signal of its own, so the caller's keeps its limit.
    const stopping = new AbortController();
    setMaxListeners(256, stopping.signal);
    outer.addEventListener('abort', () => stopping.abort(outer.reason), { once: true });
    if (outer.aborted) stopping.abort(outer.reason);
    const signal = stopping.signal;
    signal.addEventListener('abort', () => this.queue.shutdown(), { once: true });
    const storageKey = (o: KubeObject) => keyOf(o.metadata?.namespace ?? '', o.metadata?.name ?? '');
    const byLabel = (label: string) => (o: KubeObject) => {
      const name = o.metadata?.labels?.[label];
      return name ? keyOf(o.metadata?.namespace ?? '', name) : undefined;
    };
    const tasks: Promise<void>[] = [
      this.#watch(STORAGES, undefined, storageKey, signal, true),
      this.#watch(CONFIG_MAPS, `${MANAGED_BY_LABEL}=${MANAGER}`, byLabel(INJECTED_LABEL), signal),
    ];
    for (const r of WORKLOADS) {
      tasks.push(this.#watch(r, STORAGE_LABEL, byLabel(STORAGE_LABEL), signal));
      tasks.push(this.#watch(r, INJECTED_LABEL, byLabel(INJECTED_LABEL), signal));
    }
    for (let i = 0; i < this.#o.workers; i++) tasks.push(this.#worker(signal));
    log.info('controller started', { namespace: this.#o.namespace ?? '(all)', workers: this.#o.workers });
    await Promise.all(tasks);
  }

  async #worker(signal: AbortSignal): Promise<void> {
    const { log } = this.#o;
    for (;;) {
      const key = await this.queue.next();
      if (key === undefined || signal.aborted) return;
      const started = Date.now();
      try {
        const result = await reconcileStorage({ kube: this.#o.kube, image: this.#o.image }, parseKey(key), {
          signal,
        });
        this.queue.forget(key);
        this.#o.observer?.reconciled(true, (Date.now() - started) / 1000);
        if (result.requeueAfterMs !== undefined) this.queue.addAfter(key, result.requeueAfterMs);
        log.debug('reconciled', { key, ms: Date.now() - started });
      } catch (e) {
        if (signal.aborted) return;
        this.#o.observer?.reconciled(false, (Date.now() - started) / 1000);
        const delay = this.queue.retry(key);
        log.warn('reconcile failed; retrying', { key, error: (e as Error).message, retryInMs: delay });
      } finally {
        this.queue.done(key);
      }
    }
  }

  /** List, then watch from the list's version; again after any end. Each object's key is queued. */
  async #watch(
    r: Resource,
    labelSelector: string | undefined,
    keyFor: (o: KubeObject) => string | undefined,
    signal: AbortSignal,
    resync = false,
  ): Promise<void> {
    const { kube, log } = this.#o;
    const path = this.#o.namespace ? r.collection(this.#o.namespace) : r.all;
    let listed = false;
    let failures = 0;
    while (!signal.aborted) {
      try {
        const list = await kube.list(path, { labelSelector }, { signal });
        for (const o of list.items) {
          const key = keyFor(o);
          if (key) this.queue.add(key);
        }
        if (!listed) {
          listed = true;
          this.#synced++;
        }
        let version = list.metadata.resourceVersion;
        const relistAt = Date.now() + this.#o.resyncMs;
        // Watches end by themselves (timeoutSeconds); go on from the last version seen until
        // the resync is due or the watch fails.
        while (!signal.aborted && (!resync || Date.now() < relistAt)) {
          for await (const event of kube.watch(
            path,
            { labelSelector, resourceVersion: version, timeoutSeconds: 240 },
            { signal },
          )) {
            version = event.object.metadata?.resourceVersion ?? version;
            if (event.type === 'BOOKMARK') continue;
            const key = keyFor(event.object);
            if (key) this.queue.add(key);
          }
          failures = 0;
        }
      } catch (e) {
        if (signal.aborted) return;
        if (isGone(e)) continue; // the version is too old: list afresh, at once
        failures++;
        const delay = Math.min(30_000, 500 * 2 ** Math.min(failures, 6));
        log.warn('watch failed; listing again', {
          resource: r.kind,
          error: (e as Error).message,
          retryInMs: delay,
        });
        await sleep(delay, undefined, { signal }).catch(() => undefined);
      }
    }
  }
}
