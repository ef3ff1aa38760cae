import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO } from './helpers/spawn.js';

/**
 * The packages declare Node.js >= 20.18.1; a dependency that needs a later Node (the AWS SDK's
 * releases after early January 2027 will, cookie 2 did through fastify's light-my-request) must come
 * in with a plan, not by a lock update. This fails on any package of the lock whose `engines.node`
 * starts above 20, naming it.
 */
describe('engines', () => {
  it('no package in the lock needs more than the Node.js 20 the workspaces declare', () => {
    const lock = JSON.parse(readFileSync(join(REPO, 'package-lock.json'), 'utf8')) as {
      packages: Record<string, { version?: string; engines?: { node?: string } | string[] }>;
    };
    const over: string[] = [];
    for (const [path, p] of Object.entries(lock.packages)) {
      const node = Array.isArray(p.engines) ? undefined : p.engines?.node;
      const floor = node && /^\s*>=?\s*v?(\d+)/.exec(node);
      if (floor && Number(floor[1]) > 20) over.push(`${path}@${p.version}: node ${node}`);
    }
    expect(over).toEqual([]);
    for (const ws of ['src-lib', 'sidecar', 'operator'])
      expect(JSON.parse(readFileSync(join(REPO, ws, 'package.json'), 'utf8')).engines.node).toBe('>=20.18.1');
  });
});
