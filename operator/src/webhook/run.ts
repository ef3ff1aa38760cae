import { setTimeout as sleep } from 'node:timers/promises';
import type { Kube } from '../kube/client.js';
import type { Logger } from '../log.js';
import type { OperatorObserver } from '../metrics.js';
import type { TarnStorage } from '../reconcile/storage.js';
import { objectPath, STORAGES } from '../resources.js';
import type { CertificateSource } from './certificates.js';
import { WebhookServer } from './server.js';

export interface WebhookRunOptions {
  kube: Kube;
  log: Logger;
  /** The sidecar image of storages that name none. */
  image: string;
  port: number;
  /** Default: every address. */
  address?: string;
  certificates: CertificateSource;
  /** How often the certificate source is synced (rotation steps, a renewed cert-manager Secret). */
  syncIntervalMs: number;
  observer?: Pick<OperatorObserver, 'admitted'>;
  /** The read of a pod's TarnStorage: well inside the webhook's timeout, so a slow API server is a clear refusal. */
  storageTimeoutMs?: number;
}

export interface RunningWebhook {
  server: WebhookServer;
  port: number;
  /** Resolves when the server has stopped (after the signal). */
  done: Promise<void>;
}

/**
 * The webhook's wiring: a first certificate (retried until there is one: the server cannot start
 * without it), the server, and a loop that syncs the certificates and swaps the one served. A
 * failed sync keeps serving what it has and tries again at the next tick.
 */
export async function startWebhook(o: WebhookRunOptions, signal: AbortSignal): Promise<RunningWebhook> {
  let first: Awaited<ReturnType<CertificateSource['sync']>> | undefined;
  for (let failures = 0; first === undefined; failures++) {
    try {
      first = await o.certificates.sync({ signal });
    } catch (e) {
      if (signal.aborted) throw e;
      const delay = Math.min(30_000, 500 * 2 ** Math.min(failures, 6));
      o.log.warn('webhook certificate not available yet; retrying', {
        error: (e as Error).message,
        retryInMs: delay,
      });
      await sleep(delay, undefined, { signal });
    }
  }
  const timeout = o.storageTimeoutMs ?? 3000;
  const server = new WebhookServer({
    log: o.log,
    image: o.image,
    certificate: first,
    ...(o.observer ? { observer: o.observer } : {}),
    storage: (namespace, name) =>
      // Only the timeout: a read in flight at shutdown ends by it, and a signal per admission
      // combined with the process's would pile listeners onto the long-lived one.
      o.kube.find<TarnStorage>(objectPath(STORAGES, namespace, name), {
        signal: AbortSignal.timeout(timeout),
      }),
  });
  const port = await server.listen(o.port, o.address);
  o.log.info('webhook serving', { port });
  const done = (async () => {
    while (!signal.aborted) {
      await sleep(o.syncIntervalMs, undefined, { signal }).catch(() => undefined);
      if (signal.aborted) break;
      try {
        server.setCertificate(await o.certificates.sync({ signal }));
      } catch (e) {
        if (!signal.aborted) o.log.warn('webhook certificate sync failed', { error: (e as Error).message });
      }
    }
    await server.close();
  })();
  return { server, port, done };
}
