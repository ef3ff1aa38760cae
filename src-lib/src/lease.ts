import type { OpOptions } from './location/contract.js';

/**
 * A lock with an expiry, held by one process across a machine or a cluster, e.g. so that one
 * process computes a memoised result while the others wait for it. A holder that dies loses the
 * lease when it expires; a live holder keeps it by renewing.
 */
export interface Lease {
  /** Extends the expiry; false when the lease was lost (expired and taken by another holder). */
  renew(): Promise<boolean>;
  /** Gives the lease up, if it is still ours. */
  release(): Promise<void>;
}

/** A location that can hand out leases (a disk lake: lock files; Redis: keys with an expiry). */
export interface Leasing {
  /** The lease named `name` (lowercase hex), or null when someone else holds it. */
  lease(name: string, ttlMs: number, options?: OpOptions): Promise<Lease | null>;
}

export function canLease(x: unknown): x is Leasing {
  return typeof (x as Partial<Leasing> | null)?.lease === 'function';
}
