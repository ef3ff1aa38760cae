import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { join } from 'node:path';
import { buildApp, type ServeSettings, settingsOf, Trees } from '@tarnjs/sidecar';
import type { HashKeyStorage, Location } from '@tarnjs/tarn';
import type { ReadinessBody } from '@tarnjs/tarn/sidecar-api';
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import { freshPath } from '../../helpers/tmp.js';

export interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  text: string;
  // biome-ignore lint/suspicious/noExplicitAny: a test reads whatever JSON the route answered
  json: any;
}

export interface Served {
  app: FastifyInstance;
  socket: string;
  trees: Trees;
  settings: ServeSettings;
  call(method: string, path: string, options?: CallOptions): Promise<Answer>;
  close(): Promise<void>;
}

export interface CallOptions {
  headers?: Record<string, string | number>;
  body?: Buffer | string | AsyncIterable<Buffer>;
  json?: unknown;
}

/** One request over the Unix socket (a fresh connection: no pooled state between tests). */
export function call(
  socket: string,
  method: string,
  path: string,
  options: CallOptions = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = { ...options.headers };
    let body = options.body;
    if (options.json !== undefined) {
      body = JSON.stringify(options.json);
      headers['content-type'] ??= 'application/json';
    }
    if ((typeof body === 'string' || Buffer.isBuffer(body)) && headers['content-length'] === undefined)
      headers['content-length'] = Buffer.byteLength(body);
    const req = httpRequest({ socketPath: socket, method, path, headers, agent: false }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const buf = Buffer.concat(parts);
        const text = buf.toString('utf8');
        let json: unknown;
        try {
          json = text ? JSON.parse(text) : undefined;
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: buf, text, json });
      });
    });
    req.on('error', reject);
    if (body === undefined) req.end();
    else if (typeof body === 'string' || Buffer.isBuffer(body)) req.end(body);
    else
      (async () => {
        for await (const chunk of body) if (!req.write(chunk)) await new Promise((r) => req.once('drain', r));
        req.end();
      })().catch((e) => req.destroy(e));
  });
}

const READY: ReadinessBody = { ready: true, generation: 1, loadedAt: null, lastReload: null };

/** A sidecar app on a fresh socket in `base`, serving `storage`. */
export async function serve(
  base: string,
  storage: HashKeyStorage,
  options: {
    settings?: Partial<ServeSettings>;
    memoIndex?: Location;
    readiness?: () => ReadinessBody;
    /** A plugin that sees every request (as the metrics plugin does). */
    instrument?: FastifyPluginAsync;
  } = {},
): Promise<Served> {
  const socket = join(freshPath(base, 'sock'), 's.sock');
  const { mkdirSync } = await import('node:fs');
  mkdirSync(join(socket, '..'), { recursive: true });
  const settings = { ...settingsOf(undefined, base, socket), ...options.settings };
  // Each tree gets the hot cache these settings give (on by default, as in `tarn serve`).
  const trees = new Trees(settings.hotCache);
  trees.swap(storage, options.memoIndex);
  const app = await buildApp({
    trees,
    settings,
    readiness: options.readiness ?? (() => READY),
    instrument: options.instrument,
  });
  await app.listen({ path: socket });
  return {
    app,
    socket,
    trees,
    settings,
    call: (method, path, o) => call(socket, method, path, o),
    close: async () => {
      await app.close();
      await trees.close();
    },
  };
}
