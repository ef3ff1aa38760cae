import { AbortError } from '@tarnjs/tarn';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { Held, Tree, Trees } from '../trees.js';

declare module 'fastify' {
  interface FastifyRequest {
    /**
     * The tree this request works on: the current one at the first call, held until both the
     * response is closed and the handler has returned, so a reload never closes it under the request.
     */
    tree(): Tree;
    /** Fires when the client goes away before its response is complete: the operation stops. */
    readonly signal: AbortSignal;
    /** Runs `fn` once the response is closed (sent or cut), before the tree is let go: e.g. close a value. */
    whenDone(fn: () => unknown): void;
    /** Called by the route wrapper around its handler: the tree is not let go while it runs. */
    handling(running: boolean): void;
  }
}

const SCOPE = Symbol('tarn.requestScope');

/** What one request holds; everything is created on first use, so a health check costs nothing. */
interface Scope {
  /** The response is closed (finished or cut). */
  closed: boolean;
  /** The response was closed before it was complete: the client went away. */
  cut: boolean;
  handling: boolean;
  held?: Held;
  controller?: AbortController;
  cleanups?: Array<() => unknown>;
  released: boolean;
}

type Scoped = FastifyRequest & { [SCOPE]: Scope | null };

function scopeOf(request: FastifyRequest): Scope {
  const scoped = request as Scoped;
  scoped[SCOPE] ??= { closed: false, cut: false, handling: false, released: false };
  return scoped[SCOPE];
}

/** Runs the cleanups, then lets the tree go: once, when the response is closed and the handler done. */
function settle(scope: Scope): void {
  if (!scope.closed || scope.handling || scope.released) return;
  scope.released = true;
  const cleanups = scope.cleanups ?? [];
  scope.cleanups = undefined;
  const held = scope.held;
  if (cleanups.length === 0) {
    held?.release();
    return;
  }
  void Promise.allSettled(cleanups.map(async (fn) => fn())).then(() => held?.release());
}

export const treePlugin = fp(async (app: FastifyInstance, options: { trees: Trees }) => {
  const { trees } = options;
  app.decorateRequest(SCOPE, null);
  app.decorateRequest('tree', function (this: FastifyRequest): Tree {
    const scope = scopeOf(this);
    if (scope.held) return scope.held.tree;
    if (scope.closed) throw new AbortError(new Error('the client went away'));
    scope.held = trees.acquire();
    return scope.held.tree;
  });
  app.decorateRequest('signal', {
    getter(this: FastifyRequest): AbortSignal {
      const scope = scopeOf(this);
      if (!scope.controller) {
        scope.controller = new AbortController();
        if (scope.cut) scope.controller.abort(new Error('the client went away'));
      }
      return scope.controller.signal;
    },
  });
  app.decorateRequest('whenDone', function (this: FastifyRequest, fn: () => unknown): void {
    const scope = scopeOf(this);
    if (scope.released) void (async () => fn())().catch(() => undefined);
    else {
      scope.cleanups ??= [];
      scope.cleanups.push(fn);
    }
  });
  app.decorateRequest('handling', function (this: FastifyRequest, running: boolean): void {
    const scope = scopeOf(this);
    scope.handling = running;
    settle(scope);
  });

  app.addHook('onRequest', (request, reply, done) => {
    const scope = scopeOf(request);
    const res = reply.raw;
    res.once('close', () => {
      scope.closed = true;
      scope.cut = !res.writableFinished;
      if (scope.cut) scope.controller?.abort(new Error('the client went away'));
      settle(scope);
    });
    done();
  });
});
