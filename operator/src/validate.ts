import { NODE_KINDS, type StorageNode, type StorageSpec, storageSpec } from './spec.js';

/** A spec that cannot work as written: reported on the Ready condition; retrying cannot fix it. */
export class InvalidSpecError extends Error {
  override readonly name = 'InvalidSpecError';
}

/** The names a node refers to (its children). */
export function childrenOf(node: StorageNode): string[] {
  if (node.levels) return node.levels.levels.map((l) => l.node);
  if (node.fanout) return [...node.fanout.members];
  if (node.small) return [node.small.node];
  return [];
}

export function kindOf(node: StorageNode): (typeof NODE_KINDS)[number] {
  const kinds = NODE_KINDS.filter((k) => node[k] !== undefined);
  if (kinds.length !== 1)
    throw new InvalidSpecError(`node ${node.name}: a node is exactly one of ${NODE_KINDS.join(', ')}`);
  return kinds[0] as (typeof NODE_KINDS)[number];
}

/**
 * The spec, checked as the CRD's schema and rules check it (an object stored before the CRD had a
 * rule, or written by an older API server, may not be), plus what a CRD cannot check: cycles
 * through several nodes. Throws InvalidSpecError naming the field.
 */
export function validateSpec(raw: unknown): StorageSpec {
  const parsed = storageSpec.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = ['spec', ...(issue?.path ?? [])].join('.');
    throw new InvalidSpecError(`${where}: ${issue?.message ?? 'invalid'}`);
  }
  const spec = parsed.data;
  const byName = new Map<string, StorageNode>();
  for (const node of spec.nodes) {
    if (byName.has(node.name)) throw new InvalidSpecError(`spec.nodes: two nodes are named ${node.name}`);
    byName.set(node.name, node);
    kindOf(node);
  }
  const known = (name: string, where: string) => {
    if (!byName.has(name)) throw new InvalidSpecError(`${where}: no node is named ${name}`);
  };
  known(spec.root, 'spec.root');
  if (spec.memo) known(spec.memo.index, 'spec.memo.index');
  for (const node of spec.nodes) for (const child of childrenOf(node)) known(child, `node ${node.name}`);
  const mounts = new Map<string, string>();
  for (const node of spec.nodes) {
    if (!node.disk) continue;
    const other = mounts.get(node.disk.mountPath);
    if (other)
      throw new InvalidSpecError(
        `nodes ${other} and ${node.name} are both mounted at ${node.disk.mountPath}`,
      );
    mounts.set(node.disk.mountPath, node.name);
  }
  // Depth first from every node; a node met again on the current path closes a cycle.
  const state = new Map<string, 'open' | 'done'>();
  const visit = (name: string, path: string[]) => {
    if (state.get(name) === 'done') return;
    if (state.get(name) === 'open')
      throw new InvalidSpecError(
        `the nodes form a cycle: ${[...path.slice(path.indexOf(name)), name].join(' → ')}`,
      );
    state.set(name, 'open');
    for (const child of childrenOf(byName.get(name) as StorageNode)) visit(child, [...path, name]);
    state.set(name, 'done');
  };
  for (const node of spec.nodes) visit(node.name, []);
  return spec;
}
