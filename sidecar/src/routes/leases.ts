import { randomBytes } from 'node:crypto';
import { type Lease, LeaseLostError, UnsupportedError } from '@tarnjs/tarn';
import { ROUTES } from '@tarnjs/tarn/sidecar-api';
import type { FastifyInstance } from 'fastify';
import type { Held, Trees } from '../trees.js';
import { route } from './route.js';

interface Holding {
  readonly name: string;
  readonly lease: Lease;
  readonly ttlMs: number;
  /** The tree the lease came from, held while the lease is: a reload must not close it under the holder. */
  readonly held: Held;
  timer: NodeJS.Timeout;
}

/**
 * Single-flight leases for remote smartCache clients. A lease lives here, under a random token,
 * for as long as its client renews it within its TTL; a client that dies stops renewing, and the
 * lease is released here (and expires where it is kept, Redis or a lock file, in any case).
 */
export class LeaseTable {
  readonly #holdings = new Map<string, Holding>();

  constructor(private readonly trees: Trees) {}

  get size(): number {
    return this.#holdings.size;
  }

  async acquire(name: string, ttlMs: number, signal: AbortSignal): Promise<string | null> {
    const held = this.trees.acquire();
    let lease: Lease | null;
    try {
      const leasing = held.tree.leasing;
      if (!leasing)
        throw new UnsupportedError(
          'this sidecar’s tree has no Redis or disk lake to lease from; leases are not available',
        );
      lease = await leasing.lease(name, ttlMs, { signal });
    } catch (e) {
      held.release();
      throw e;
    }
    if (!lease) {
      held.release();
      return null;
    }
    if (signal.aborted) {
      // The client went away while waiting: nobody would ever renew or release it.
      await lease.release().catch(() => undefined);
      held.release();
      return null;
    }
    const token = randomBytes(16).toString('hex');
    const holding: Holding = { name, lease, ttlMs, held, timer: this.#expiry(token, ttlMs) };
    this.#holdings.set(token, holding);
    return token;
  }

  /** Extends the lease; LeaseLostError when the token names none held (any more) under `name`. */
  async renew(name: string, token: string): Promise<number> {
    const holding = this.#holdings.get(token);
    if (!holding || holding.name !== name)
      throw new LeaseLostError(`lease ${name} is not held with this token (it expired or was released)`);
    clearTimeout(holding.timer);
    holding.timer = this.#expiry(token, holding.ttlMs);
    // A renewal that fails (Redis away) keeps the lease until the timer set above lets it go.
    const renewed = await holding.lease.renew();
    if (!renewed) {
      await this.#end(token, false);
      throw new LeaseLostError(`lease ${name} was lost: it expired and another holder took it`);
    }
    return holding.ttlMs;
  }

  /** Gives the lease up; a token that names nothing is fine (released twice, or expired). */
  async release(name: string, token: string): Promise<void> {
    const holding = this.#holdings.get(token);
    if (!holding || holding.name !== name) return;
    await this.#end(token, true);
  }

  /** Releases every lease (the server is closing). */
  async close(): Promise<void> {
    await Promise.allSettled([...this.#holdings.keys()].map((token) => this.#end(token, true)));
  }

  #expiry(token: string, ttlMs: number): NodeJS.Timeout {
    const timer = setTimeout(() => void this.#end(token, true), ttlMs);
    // A lease nobody renews must not keep the process alive.
    timer.unref();
    return timer;
  }

  async #end(token: string, release: boolean): Promise<void> {
    const holding = this.#holdings.get(token);
    if (!holding) return;
    this.#holdings.delete(token);
    clearTimeout(holding.timer);
    try {
      if (release) await holding.lease.release();
    } catch {
      // Where it is kept, the lease expires on its own: nothing is lost by a failed release.
    } finally {
      holding.held.release();
    }
  }
}

export async function leaseRoutes(app: FastifyInstance, options: { leases: LeaseTable }): Promise<void> {
  const { leases } = options;
  route(app, ROUTES.lease, async (request, reply) => {
    const { name } = request.params;
    const body = request.body;
    switch (body.action) {
      case 'acquire': {
        const token = await leases.acquire(name, body.ttlMs, request.signal);
        return reply.send(token ? { acquired: true, token, ttlMs: body.ttlMs } : { acquired: false });
      }
      case 'renew': {
        const ttlMs = await leases.renew(name, body.token);
        return reply.send({ acquired: true, token: body.token, ttlMs });
      }
      case 'release':
        await leases.release(name, body.token);
        return reply.code(204).send();
    }
  });
}
