/**
 * The CEL rules of the TarnStorage CRD: what the API server can check of a spec before it is
 * stored, so that `kubectl apply` of a broken tree fails at once, naming the field. Each walks lists
 * whose sizes the schema bounds (32 nodes, 8 levels or members), so their cost stays far inside the
 * API server's budget. What CEL cannot check (a cycle through several nodes) the operator checks
 * (validate.ts) and reports as the Ready condition.
 */
export interface Rule {
  rule: string;
  message: string;
  /** The field the message points at (a JSON path relative to where the rule sits). */
  fieldPath?: string;
}

/** `has(self.x)` for every node kind: exactly one of them is set. */
function exactlyOne(fields: readonly string[]): string {
  return `[${fields.map((f) => `has(self.${f})`).join(', ')}].filter(x, x).size() == 1`;
}

const named = (expr: string) => `self.nodes.exists(m, m.name == ${expr})`;

export function specRules(): Rule[] {
  return [
    { rule: named('self.root'), message: 'root must name one of the nodes', fieldPath: '.root' },
    {
      rule: `self.nodes.all(n, !has(n.levels) || n.levels.levels.all(l, ${named('l.node')}))`,
      message: 'every level must name one of the nodes',
      fieldPath: '.nodes',
    },
    {
      rule: `self.nodes.all(n, !has(n.fanout) || n.fanout.members.all(x, ${named('x')}))`,
      message: 'every fanout member must name one of the nodes',
      fieldPath: '.nodes',
    },
    {
      rule: `self.nodes.all(n, !has(n.small) || ${named('n.small.node')})`,
      message: 'a small node must name one of the nodes',
      fieldPath: '.nodes',
    },
    {
      rule: `self.nodes.all(n, (!has(n.levels) || n.levels.levels.all(l, l.node != n.name)) && (!has(n.fanout) || n.fanout.members.all(x, x != n.name)) && (!has(n.small) || n.small.node != n.name))`,
      message: 'a node cannot contain itself',
      fieldPath: '.nodes',
    },
    {
      rule: `!has(self.memo) || ${named('self.memo.index')}`,
      message: 'memo.index must name one of the nodes',
      fieldPath: '.memo.index',
    },
    {
      rule: 'self.nodes.filter(n, has(n.disk)).all(a, self.nodes.filter(n, has(n.disk) && n.disk.mountPath == a.disk.mountPath).size() == 1)',
      message: 'two disk nodes cannot share a mountPath',
      fieldPath: '.nodes',
    },
  ];
}

export function nodeRules(kinds: readonly string[]): Rule[] {
  return [{ rule: exactlyOne(kinds), message: `a node is exactly one of: ${kinds.join(', ')}` }];
}

export function volumeRules(): Rule[] {
  return [
    {
      rule: exactlyOne(['hostPath', 'emptyDir', 'persistentVolumeClaim']),
      message: 'a volume is exactly one of: hostPath, emptyDir, persistentVolumeClaim',
    },
  ];
}

/** A size is a non-negative integer or a string with a unit; the library's parser has the last word. */
export function sizeRules(pattern: string): Rule[] {
  return [
    {
      rule: `type(self) == int ? self >= 0 : self.matches(${JSON.stringify(pattern)})`,
      message: 'a size is bytes, or a number with a unit (100K, 10MiB, 500G)',
    },
  ];
}
