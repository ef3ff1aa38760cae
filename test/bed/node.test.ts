// The real node of the bed: up in a network namespace with no route out, a pod that runs and can
// reach the node's own address but nothing outside its subnet, and a stop that leaves the host as
// it was (processes, mounts, cgroups, the namespace, kernel settings, host paths).
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO } from '../helpers/spawn.js';
import { availableLocally, binary } from './binaries.js';
import { GATEWAY, type Node, startNode } from './node.js';

const image = (name: string): string => {
  const out = execFileSync('bash', [join(REPO, 'scripts/image.sh'), name], {
    encoding: 'utf8',
    maxBuffer: 16 << 20,
  });
  return (JSON.parse(out.trim().split('\n').at(-1) ?? '{}') as { archive: string }).archive;
};

describe.runIf(availableLocally('node'))('bed: a real node', () => {
  let node: Node;
  let startedIn = 0;
  beforeAll(async () => {
    const t = Date.now();
    node = await startNode();
    startedIn = Date.now() - t;
    for (const name of ['pause', 'busybox']) node.importImage(image(name));
  }, 240_000);
  afterAll(async () => {
    await node?.stop();
  }, 120_000);

  it('lives in a namespace with loopback and its bridge only, and no default route', () => {
    console.log(`node Ready ${startedIn} ms after the first daemon was started`);
    const routes = execFileSync('ip', ['-n', node.netns, 'route', 'show'], { encoding: 'utf8' })
      .trim()
      .split('\n');
    expect(routes).toHaveLength(1);
    expect(routes[0]).toMatch(/^10\.213\.0\.0\/24 dev cni0 /);
    expect(
      execFileSync('ip', ['-n', node.netns, 'route', 'show', 'default'], { encoding: 'utf8' }).trim(),
    ).toBe('');
    const links = execFileSync('ip', ['-n', node.netns, '-o', 'link', 'show'], { encoding: 'utf8' });
    for (const line of links.trim().split('\n')) expect(line).toMatch(/: (lo|cni0|veth[0-9a-f]+@\S+):/);
  });

  it('runs a pod that reaches the node’s address and nothing outside its subnet', async () => {
    const pod = `
apiVersion: v1
kind: Pod
metadata: { name: probe, namespace: default }
spec:
  restartPolicy: Never
  containers:
    - name: probe
      image: localhost/busybox:1.35
      imagePullPolicy: Never
      command: [sh, -c]
      args:
        - |
          ip -4 addr show eth0 | sed -n 's/.*inet \\([0-9.]*\\).*/addr \\1/p'
          ip route
          timeout 5 wget -q -O- http://${GATEWAY}:8089/ && echo ' gateway reachable'
          # TEST-NET-1 (RFC 5737): no route to it, so nothing is even sent
          timeout 5 wget -q -O- http://192.0.2.1/ 2>&1 || echo outside unreachable
`;
    await node.startInside(
      'hello',
      [
        process.execPath,
        '-e',
        `require('http').createServer((q, r) => r.end('hello')).listen(8089, '${GATEWAY}')`,
      ],
      async () => node.exec(['curl', '-sf', '-m', '2', `http://${GATEWAY}:8089/`]) === 'hello',
    );
    node.exec([binary('kubectl'), `--kubeconfig=${node.kubeconfigPath}`, 'apply', '-f', '-'], { input: pod });
    node.exec(
      [
        binary('kubectl'),
        `--kubeconfig=${node.kubeconfigPath}`,
        'wait',
        '--for=jsonpath={.status.phase}=Succeeded',
        'pod/probe',
        '--timeout=120s',
      ],
      { timeoutMs: 130_000 },
    );
    const log = node.exec([binary('kubectl'), `--kubeconfig=${node.kubeconfigPath}`, 'logs', 'probe']);
    expect(log).toMatch(/addr 10\.213\.0\.\d+/);
    expect(log).not.toMatch(/default/);
    expect(log).toContain('hello gateway reachable');
    expect(log).toContain('outside unreachable');
    // The kernel refuses at once: no route, so no packet.
    expect(log).toMatch(/Network is unreachable/);
  }, 180_000);

  it('stops leaving nothing behind', async () => {
    const { netns, dir, footprint } = node;
    await node.stop();
    const namespaces = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
    expect(namespaces).not.toContain(netns);
    // The pods' namespaces too (containerd's cni-…): only those that were there before remain.
    const now = namespaces
      .split('\n')
      .map((l) => l.split(' ')[0])
      .filter(Boolean);
    expect(now.filter((n) => !footprint.netnsBefore.includes(n as string))).toEqual([]);
    expect(readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(dir);
    expect(existsSync(dir)).toBe(false);
    for (const [name, value] of Object.entries(footprint.sysctls))
      expect(readFileSync(`/proc/sys/${name}`, 'utf8').trim(), name).toBe(value);
    for (const p of footprint.hostPaths) expect(existsSync(p), p).toBe(false);
    for (const h of ['cpu', 'memory', 'pids'])
      expect(existsSync(join('/sys/fs/cgroup', h, footprint.cgroupRoot)), h).toBe(false);
    const left = execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' })
      .split('\n')
      .filter((l) => l.includes(dir));
    expect(left).toEqual([]);
    node = undefined as unknown as Node;
  }, 120_000);
});
