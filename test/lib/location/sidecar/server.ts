import { join } from 'node:path';
import { buildApp, type ServeSettings, settingsOf, Trees } from '@tarnjs/sidecar';
import type { HashKeyStorage, Location } from '@tarnjs/tarn';
import type { FastifyInstance } from 'fastify';

/** A sidecar served by this process: the real app (buildApp) on a real Unix socket. */
export interface InProcessSidecar {
  socket: string;
  app: FastifyInstance;
  trees: Trees;
  /** Holds every request before its handler (a frozen server) until `resume()`. */
  pause(): void;
  resume(): void;
  /** Stops the server (the socket goes) and closes its tree. */
  close(): Promise<void>;
}

/**
 * Starts the sidecar's app over `storage` on a socket in `dir`, as `tarn serve` would, without a
 * process of its own, so tests can reach into its storage.
 */
export async function startSidecar(
  dir: string,
  storage: HashKeyStorage,
  options: { memoIndex?: Location; settings?: Partial<ServeSettings>; name?: string } = {},
): Promise<InProcessSidecar> {
  const socket = join(dir, options.name ?? 'tarn.sock');
  const settings = { ...settingsOf(undefined, dir, socket), allowDelete: true, ...options.settings };
  const trees = new Trees(settings.hotCache);
  trees.swap(storage, options.memoIndex);
  const app = await buildApp({
    trees,
    settings,
    readiness: () => ({ ready: true, generation: 1, loadedAt: null, lastReload: null }),
  });
  let gate: { promise: Promise<void>; open: () => void } | undefined;
  app.addHook('onRequest', async () => {
    if (gate) await gate.promise;
  });
  await app.listen({ path: socket });
  let closed = false;
  return {
    socket,
    app,
    trees,
    pause: () => {
      let open: () => void = () => undefined;
      const promise = new Promise<void>((r) => {
        open = r;
      });
      gate = { promise, open };
    },
    resume: () => {
      gate?.open();
      gate = undefined;
    },
    close: async () => {
      if (closed) return;
      closed = true;
      gate?.open();
      await app.close();
      await trees.close();
    },
  };
}
