import type { RequestOptions } from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node';
import { Agent, type Dispatcher, request } from 'undici';
import { FIELD_MANAGER } from '../names.js';

/**
 * The few calls the operator makes, on raw JSON. The typed clients of @kubernetes/client-node
 * serialise through their models, which drop what the models do not name (`x-kubernetes-*` of a
 * CRD, fields newer than the client): server-side apply must send exactly what the operator means
 * to own. The KubeConfig still says where and how to connect (token, client cert, CA).
 */
export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata?: {
    name?: string;
    namespace?: string;
    uid?: string;
    resourceVersion?: string;
    generation?: number;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    finalizers?: string[];
    deletionTimestamp?: string;
    ownerReferences?: Array<Record<string, unknown>>;
    [field: string]: unknown;
  };
  [field: string]: unknown;
}

export interface KubeList<T extends KubeObject = KubeObject> {
  metadata: { resourceVersion?: string; continue?: string };
  items: T[];
}

export interface WatchEvent<T extends KubeObject = KubeObject> {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: T;
}

/** An answer of the API server other than 2xx, with its Status (reason, message). */
export class KubeError extends Error {
  constructor(
    readonly status: number,
    readonly reason: string,
    message: string,
  ) {
    super(message);
    this.name = 'KubeError';
  }
}

export const isNotFound = (e: unknown) => e instanceof KubeError && e.status === 404;
export const isConflict = (e: unknown) => e instanceof KubeError && e.status === 409;
export const isGone = (e: unknown) => e instanceof KubeError && e.status === 410;
/** 422: a JSON Patch whose `test` failed (the object changed since it was read), or an invalid object. */
export const isInvalid = (e: unknown) => e instanceof KubeError && e.status === 422;

export interface CallOptions {
  signal?: AbortSignal;
}

export class Kube {
  readonly server: string;
  readonly #headers: Record<string, string>;
  readonly #agent: Agent;

  private constructor(server: string, headers: Record<string, string>, agent: Agent) {
    this.server = server.replace(/\/$/, '');
    this.#headers = headers;
    this.#agent = agent;
  }

  /** Connects as the KubeConfig's current context says (in a pod: its service account). */
  static async from(config: KubeConfig): Promise<Kube> {
    const cluster = config.getCurrentCluster();
    if (!cluster) throw new Error('the kubeconfig has no current cluster');
    const opts: RequestOptions = {};
    await config.applyToHTTPSOptions(opts);
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(opts.headers ?? {}))
      if (typeof v === 'string') headers[k.toLowerCase()] = v;
    const agent = new Agent({
      connect: {
        ca: opts.ca as string | Buffer | undefined,
        cert: opts.cert as string | Buffer | undefined,
        key: opts.key as string | Buffer | undefined,
        rejectUnauthorized: !cluster.skipTLSVerify,
      },
      connections: 16,
    });
    return new Kube(cluster.server, headers, agent);
  }

  async #call(
    method: Dispatcher.HttpMethod,
    path: string,
    options: CallOptions & { body?: unknown; contentType?: string } = {},
  ): Promise<Dispatcher.ResponseData> {
    const headers: Record<string, string> = { ...this.#headers, accept: 'application/json' };
    let body: string | undefined;
    if (options.body !== undefined) {
      body = JSON.stringify(options.body);
      headers['content-type'] = options.contentType ?? 'application/json';
    }
    return request(`${this.server}${path}`, {
      method,
      headers,
      body,
      dispatcher: this.#agent,
      signal: options.signal,
      headersTimeout: 30_000,
      bodyTimeout: 60_000,
    });
  }

  async #json<T>(res: Dispatcher.ResponseData): Promise<T> {
    if (res.statusCode >= 200 && res.statusCode < 300) return (await res.body.json()) as T;
    const text = await res.body.text();
    let reason = 'Unknown';
    let message = text.slice(0, 2000);
    try {
      const status = JSON.parse(text) as { reason?: string; message?: string };
      reason = status.reason ?? reason;
      message = status.message ?? message;
    } catch {
      // not a Status
    }
    throw new KubeError(res.statusCode, reason, `${res.statusCode} ${reason}: ${message}`);
  }

  async get<T extends KubeObject>(path: string, options?: CallOptions): Promise<T> {
    return this.#json<T>(await this.#call('GET', path, options));
  }

  /** The object, or undefined when it does not exist. */
  async find<T extends KubeObject>(path: string, options?: CallOptions): Promise<T | undefined> {
    try {
      return await this.get<T>(path, options);
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw e;
    }
  }

  /** Every item of a collection, page by page. */
  async list<T extends KubeObject>(
    path: string,
    query: { labelSelector?: string } = {},
    options?: CallOptions,
  ): Promise<KubeList<T>> {
    const items: T[] = [];
    let cont: string | undefined;
    let resourceVersion: string | undefined;
    do {
      const params = new URLSearchParams({ limit: '500' });
      if (query.labelSelector) params.set('labelSelector', query.labelSelector);
      if (cont) params.set('continue', cont);
      const page = await this.get<KubeObject & KubeList<T>>(`${path}?${params}`, options);
      items.push(...page.items);
      cont = page.metadata.continue || undefined;
      resourceVersion = page.metadata.resourceVersion;
    } while (cont);
    return { metadata: { resourceVersion }, items };
  }

  /**
   * Server-side apply of `object` at `path` under the operator's field manager: the fields in it are
   * the operator's, any field it owned before and left out is removed, and nobody else's fields are
   * touched. `force` takes over fields another manager owns (only the operator's own additions).
   */
  async apply<T extends KubeObject>(
    path: string,
    object: KubeObject,
    options: CallOptions & { force?: boolean; fieldManager?: string } = {},
  ): Promise<T> {
    const params = new URLSearchParams({ fieldManager: options.fieldManager ?? FIELD_MANAGER });
    if (options.force) params.set('force', 'true');
    return this.#json<T>(
      await this.#call('PATCH', `${path}?${params}`, {
        body: object,
        contentType: 'application/apply-patch+yaml',
        signal: options.signal,
      }),
    );
  }

  /** A JSON merge patch (for the finalizer list, where apply would need to own the whole list). */
  async merge<T extends KubeObject>(path: string, patch: unknown, options?: CallOptions): Promise<T> {
    return this.#json<T>(
      await this.#call('PATCH', path, {
        body: patch,
        contentType: 'application/merge-patch+json',
        signal: options?.signal,
      }),
    );
  }

  /** A JSON Patch (RFC 6902): precise edits of list items, with `test` operations as preconditions. */
  async jsonPatch<T extends KubeObject>(
    path: string,
    operations: unknown[],
    options?: CallOptions,
  ): Promise<T> {
    return this.#json<T>(
      await this.#call('PATCH', path, {
        body: operations,
        contentType: 'application/json-patch+json',
        signal: options?.signal,
      }),
    );
  }

  /** A full update (PUT): a compare-and-swap when the object carries its resourceVersion. */
  async replace<T extends KubeObject>(path: string, object: KubeObject, options?: CallOptions): Promise<T> {
    return this.#json<T>(await this.#call('PUT', path, { body: object, signal: options?.signal }));
  }

  async create<T extends KubeObject>(path: string, object: KubeObject, options?: CallOptions): Promise<T> {
    return this.#json<T>(await this.#call('POST', path, { body: object, signal: options?.signal }));
  }

  /** True when something was deleted. */
  async delete(path: string, options?: CallOptions): Promise<boolean> {
    try {
      await this.#json(await this.#call('DELETE', path, options));
      return true;
    } catch (e) {
      if (isNotFound(e)) return false;
      throw e;
    }
  }

  /**
   * The events of a collection from `resourceVersion` on, until the server ends the watch, the
   * signal fires or an ERROR event arrives (thrown: a 410 Gone is `isGone`, and the caller lists
   * afresh). Bookmarks keep the resource version current without objects.
   */
  async *watch<T extends KubeObject>(
    path: string,
    query: { labelSelector?: string; resourceVersion?: string; timeoutSeconds?: number },
    options?: CallOptions,
  ): AsyncGenerator<WatchEvent<T>> {
    const params = new URLSearchParams({ watch: '1', allowWatchBookmarks: 'true' });
    if (query.labelSelector) params.set('labelSelector', query.labelSelector);
    if (query.resourceVersion) params.set('resourceVersion', query.resourceVersion);
    params.set('timeoutSeconds', String(query.timeoutSeconds ?? 300));
    const res = await request(`${this.server}${path}?${params}`, {
      method: 'GET',
      headers: { ...this.#headers, accept: 'application/json' },
      dispatcher: this.#agent,
      signal: options?.signal,
      headersTimeout: 30_000,
      // A quiet watch sends nothing for minutes (bookmarks come about once a minute).
      bodyTimeout: 0,
    });
    if (res.statusCode !== 200) {
      await this.#json(res);
      return;
    }
    let rest = '';
    try {
      for await (const chunk of res.body) {
        rest += (chunk as Buffer).toString('utf8');
        let nl = rest.indexOf('\n');
        while (nl >= 0) {
          const line = rest.slice(0, nl).trim();
          rest = rest.slice(nl + 1);
          nl = rest.indexOf('\n');
          if (!line) continue;
          const event = JSON.parse(line) as WatchEvent<T>;
          if (event.type === 'ERROR') {
            const status = event.object as unknown as { code?: number; reason?: string; message?: string };
            throw new KubeError(
              status.code ?? 500,
              status.reason ?? 'Unknown',
              status.message ?? 'watch error',
            );
          }
          yield event;
        }
        if (rest.length > 16 << 20) throw new KubeError(500, 'TooLarge', 'a watch event over 16 MiB');
      }
    } finally {
      res.body.destroy();
    }
  }

  async close(): Promise<void> {
    await this.#agent.close();
  }
}
