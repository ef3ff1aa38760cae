// A real Kubernetes node for the end-to-end tests, without Docker, in a network namespace of its
// own with no route out: the whole cluster (etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler, containerd, the kubelet) runs inside it, and pods get addresses on its bridge,
// reachable from nowhere else and reaching nothing else. What is known to work on these machines
// (and why each setting is there) is in ../shared/reference/real-node.md and docs/testing.md.
//
// The test process stays in the host's namespace: it reaches the API server through a Unix socket
// (a file, so not namespaced) relayed to the server inside (children/relay.mjs), and runs the
// cluster's own tools (kubectl, helm, ctr) inside with `node.exec`.
import { execFileSync, spawnSync } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { binary, CACHE } from './binaries.js';
import { kubeconfigYaml } from './kube.js';
import { type Service, startService } from './process.js';

const HERE = fileURLToPath(new URL('.', import.meta.url));

/** The node's bridge: its gateway is the node's address, the servers' and the API server's. */
export const GATEWAY = '10.213.0.1';
export const SUBNET = '10.213.0.0/24';
export const API_PORT = 6443;

export interface Node extends Service {
  /** The network namespace (`ip netns` name) everything runs in. */
  readonly netns: string;
  readonly dir: string;
  /** https://10.213.0.1:6443, as the cluster's processes and pods reach it. */
  readonly server: string;
  /** Unix socket relayed to the API server, for the test process (host namespace). */
  readonly apiSocket: string;
  readonly token: string;
  readonly caPath: string;
  /** A kubeconfig for a cluster admin, for tools run inside the namespace (`exec`). */
  readonly kubeconfigPath: string;
  readonly containerdSocket: string;
  /** Runs a program inside the namespace (mounts are the host's); throws with its output on failure. */
  exec(command: string[], options?: { input?: string; timeoutMs?: number }): string;
  /** Imports an OCI archive into containerd's k8s.io namespace. */
  importImage(archive: string): void;
  /**
   * Starts a server inside the namespace (bound to the gateway, pods reach it; nothing else can),
   * stopped with the node at the latest. `ready` runs in the test process: probe through `exec`.
   */
  startInside(
    name: string,
    command: string[],
    ready: () => Promise<boolean>,
    env?: NodeJS.ProcessEnv,
  ): Promise<Service>;
  /** What the node changed on the host that `stop` must undo, for the test that checks it. */
  readonly footprint: Footprint;
}

export interface Footprint {
  sysctls: Record<string, string>;
  hostPaths: string[];
  cgroupRoot: string;
  /** The network namespaces that existed before: containerd makes one per pod (`cni-…`). */
  netnsBefore: string[];
}

const netnsList = () =>
  spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' })
    .stdout.split('\n')
    .map((l) => l.split(' ')[0] as string)
    .filter(Boolean);

/** The kernel settings the kubelet changes (they are not per namespace): put back at stop. */
const SYSCTLS = ['vm/overcommit_memory', 'kernel/panic', 'kernel/panic_on_oops', 'net/ipv4/ip_forward'];
/** Host paths the kubelet or containerd create whatever their configuration says. */
const HOST_PATHS = [
  '/var/lib/kubelet',
  '/var/log/pods',
  '/var/log/containers',
  '/run/containerd',
  '/var/lib/cni',
  '/usr/libexec/kubernetes',
];

const readSysctl = (name: string) => readFileSync(`/proc/sys/${name}`, 'utf8').trim();

function run(command: string[], options: { input?: string; timeoutMs?: number } = {}): string {
  const r = spawnSync(command[0] as string, command.slice(1), {
    input: options.input,
    encoding: 'utf8',
    timeout: options.timeoutMs ?? 60_000,
    maxBuffer: 64 << 20,
  });
  if (r.status !== 0)
    throw new Error(
      `${command.join(' ')} failed (${r.status ?? r.signal}): ${(r.stderr || r.stdout || '').slice(-3000)}`,
    );
  return r.stdout;
}

/**
 * One node at a time on a machine: the kubelet and containerd share host paths (/var/lib/kubelet,
 * /run/containerd/s) and kernel settings whatever their configuration says, so a second node would
 * see the first one's state and remove it at its stop. A lock folder holding its owner's pid, taken
 * over when that process is gone.
 */
const LOCK = '/run/tarn-bed-node.lock';
async function lockNode(timeoutMs = 600_000): Promise<() => void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      mkdirSync(LOCK);
      writeFileSync(join(LOCK, 'pid'), String(process.pid));
      return () => rmSync(LOCK, { recursive: true, force: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const owner = Number(readFileSync(join(LOCK, 'pid'), { encoding: 'utf8', flag: 'r' }).trim() || 0);
      let alive = owner > 0;
      try {
        if (alive) process.kill(owner, 0);
      } catch {
        alive = false;
      }
      if (!alive) rmSync(LOCK, { recursive: true, force: true });
      else if (Date.now() > deadline) throw new Error(`another node of the bed (pid ${owner}) runs here`);
      else await new Promise((r) => setTimeout(r, 500));
    }
  }
}

/** The cluster's processes, started in order and stopped in reverse. */
export async function startNode(dir = mkdtempSync(join(tmpdir(), 'bed-node-'))): Promise<Node> {
  const unlock = await lockNode();
  const id = randomBytes(3).toString('hex');
  const netns = `tarn-node-${id}`;
  const nsPath = `/run/netns/${netns}`;
  const inNs = (command: string[]) => ['nsenter', `--net=${nsPath}`, '--', ...command];
  const started: Service[] = [];
  const sysctls = Object.fromEntries(SYSCTLS.map((s) => [s, readSysctl(s)]));
  const hostPaths = HOST_PATHS.filter((p) => !existsSync(p));
  const cgroupRoot = `/tarn-node-${id}`;
  const footprint: Footprint = { sysctls, hostPaths, cgroupRoot, netnsBefore: netnsList() };

  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    for (const s of started.reverse()) await s.stop().catch(() => undefined);
    cleanUp(dir, netns, footprint);
    unlock();
  };

  try {
    // 1. The namespace: loopback up, and nothing else routed. Checked before anything starts.
    run(['ip', 'netns', 'add', netns]);
    run(['ip', '-n', netns, 'link', 'set', 'lo', 'up']);
    if (run(['ip', '-n', netns, 'route', 'show']).trim() !== '')
      throw new Error(`the new namespace ${netns} has routes; refusing to start a node in it`);
    // The bridge the CNI plugin takes over, with the node's address: its subnet is the only route.
    run(['ip', '-n', netns, 'link', 'add', 'cni0', 'type', 'bridge']);
    run(['ip', '-n', netns, 'addr', 'add', `${GATEWAY}/24`, 'dev', 'cni0']);
    run(['ip', '-n', netns, 'link', 'set', 'cni0', 'up']);

    // 2. Credentials: a service-account key pair and an admin token (the bed's own cluster).
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const saKey = join(dir, 'sa.key');
    const saPub = join(dir, 'sa.pub');
    writeFileSync(saKey, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    writeFileSync(saPub, publicKey.export({ type: 'spki', format: 'pem' }));
    const token = randomBytes(24).toString('hex');
    writeFileSync(join(dir, 'tokens.csv'), `${token},tarn-admin,tarn-admin,"system:masters"\n`, {
      mode: 0o600,
    });
    const certDir = join(dir, 'certs');
    mkdirSync(certDir);
    const caPath = join(certDir, 'apiserver.crt');
    const server = `https://${GATEWAY}:${API_PORT}`;
    const kubeconfigPath = join(dir, 'kubeconfig');
    writeFileSync(kubeconfigPath, kubeconfigYaml({ server, caPath, token }), { mode: 0o600 });
    const curl = (url: string, auth = false) =>
      inNs(['curl', '-sf', '-m', '2', ...(auth ? ['-k', '-H', `Authorization: Bearer ${token}`] : []), url]);
    const answers = async (url: string, auth = false) =>
      spawnSync(curl(url, auth)[0] as string, curl(url, auth).slice(1)).status === 0;

    // 3. The control plane, inside the namespace.
    started.push(
      await startService({
        name: 'etcd',
        dir,
        command: inNs([
          binary('etcd'),
          '--data-dir',
          join(dir, 'etcd'),
          '--listen-client-urls',
          'http://127.0.0.1:2379',
          '--advertise-client-urls',
          'http://127.0.0.1:2379',
          '--listen-peer-urls',
          'http://127.0.0.1:2380',
          '--unsafe-no-fsync',
          '--log-level',
          'warn',
        ]),
        ready: () => answers('http://127.0.0.1:2379/health'),
      }),
    );
    started.push(
      await startService({
        name: 'kube-apiserver',
        dir,
        timeoutMs: 90_000,
        command: inNs([
          binary('kube-apiserver'),
          '--etcd-servers=http://127.0.0.1:2379',
          `--cert-dir=${certDir}`,
          `--secure-port=${API_PORT}`,
          '--bind-address=0.0.0.0',
          `--advertise-address=${GATEWAY}`,
          '--service-cluster-ip-range=10.0.0.0/24',
          // No kube-proxy here, so no Service IP routes: the API server calls an admission
          // webhook's Service at its endpoints' pod addresses instead (on the node's bridge).
          '--enable-aggregator-routing=true',
          '--authorization-mode=RBAC',
          `--token-auth-file=${join(dir, 'tokens.csv')}`,
          `--service-account-issuer=${server}`,
          `--service-account-key-file=${saPub}`,
          `--service-account-signing-key-file=${saKey}`,
          '--allow-privileged=true',
          '--enable-priority-and-fairness=false',
          '--v=1',
        ]),
        ready: async () =>
          existsSync(caPath) && (await answers(`https://127.0.0.1:${API_PORT}/readyz`, true)),
      }),
    );
    const apiSocket = join(dir, 'api.sock');
    started.push(
      await startService({
        name: 'api-relay',
        dir,
        command: inNs([
          process.execPath,
          join(HERE, 'children', 'relay.mjs'),
          apiSocket,
          GATEWAY,
          String(API_PORT),
        ]),
        ready: async () => existsSync(apiSocket),
      }),
    );
    started.push(
      await startService({
        name: 'kube-controller-manager',
        dir,
        timeoutMs: 60_000,
        command: inNs([
          binary('kube-controller-manager'),
          `--kubeconfig=${kubeconfigPath}`,
          `--authentication-kubeconfig=${kubeconfigPath}`,
          `--authorization-kubeconfig=${kubeconfigPath}`,
          '--bind-address=127.0.0.1',
          `--service-account-private-key-file=${saKey}`,
          `--root-ca-file=${caPath}`,
          '--leader-elect=false',
          '--v=1',
        ]),
        ready: () => answers('https://127.0.0.1:10257/healthz', true),
      }),
    );
    started.push(
      await startService({
        name: 'kube-scheduler',
        dir,
        command: inNs([
          binary('kube-scheduler'),
          `--kubeconfig=${kubeconfigPath}`,
          `--authentication-kubeconfig=${kubeconfigPath}`,
          `--authorization-kubeconfig=${kubeconfigPath}`,
          '--bind-address=127.0.0.1',
          '--leader-elect=false',
          '--v=1',
        ]),
        ready: () => answers('https://127.0.0.1:10259/healthz', true),
      }),
    );

    // 4. containerd, with a root, state and socket of its own.
    const cdir = join(dir, 'containerd');
    const cniConf = join(dir, 'cni', 'net.d');
    mkdirSync(cniConf, { recursive: true });
    const containerdSocket = join(cdir, 'containerd.sock');
    mkdirSync(cdir, { recursive: true });
    writeFileSync(
      join(cniConf, '10-tarn.conflist'),
      JSON.stringify({
        cniVersion: '0.4.0',
        name: 'tarn-node',
        plugins: [
          {
            type: 'bridge',
            bridge: 'cni0',
            // The gateway is the bridge's own address; pods get no default route from it.
            isGateway: true,
            ipMasq: false,
            hairpinMode: true,
            ipam: {
              type: 'host-local',
              ranges: [[{ subnet: SUBNET, gateway: GATEWAY }]],
              dataDir: join(dir, 'cni', 'ipam'),
            },
          },
        ],
      }),
    );
    writeFileSync(
      join(cdir, 'config.toml'),
      [
        'version = 2',
        `root = "${join(cdir, 'root')}"`,
        `state = "${join(cdir, 'state')}"`,
        '[grpc]',
        `  address = "${containerdSocket}"`,
        '[ttrpc]',
        `  address = "${containerdSocket}.ttrpc"`,
        '[plugins."io.containerd.grpc.v1.cri"]',
        '  sandbox_image = "localhost/pause:3.10"',
        // root here lacks CAP_SYS_RESOURCE: runc cannot lower oom_score_adj below its own.
        '  restrict_oom_score_adj = true',
        '  [plugins."io.containerd.grpc.v1.cri".cni]',
        '    bin_dir = "/usr/lib/cni"',
        `    conf_dir = "${cniConf}"`,
        '  [plugins."io.containerd.grpc.v1.cri".containerd]',
        '    snapshotter = "overlayfs"',
        '    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]',
        '      runtime_type = "io.containerd.runc.v2"',
        '',
      ].join('\n'),
    );
    started.push(
      await startService({
        name: 'containerd',
        dir,
        command: inNs(['containerd', '--config', join(cdir, 'config.toml')]),
        ready: async () =>
          existsSync(containerdSocket) &&
          spawnSync('ctr', ['--address', containerdSocket, 'version']).status === 0,
      }),
    );
    const importImage = (archive: string) => {
      run(
        [
          'ctr',
          '--address',
          containerdSocket,
          '-n',
          'k8s.io',
          'images',
          'import',
          '--no-unpack=false',
          archive,
        ],
        {
          timeoutMs: 300_000,
        },
      );
    };

    // 5. The kubelet: cgroup v1 with cgroupfs and a root of its own (made in every hierarchy
    // first: the kubelet refuses a root that is missing from one), no DNS config for pods.
    for (const hierarchy of readdirSync('/sys/fs/cgroup')) {
      const parent = join('/sys/fs/cgroup', hierarchy);
      if (hierarchy === 'unified' || !existsSync(join(parent, 'cgroup.procs'))) continue;
      const group = join(parent, cgroupRoot);
      mkdirSync(group, { recursive: true });
      // A cpuset group takes no task until it has CPUs and memory nodes: its parent's.
      for (const f of ['cpuset.cpus', 'cpuset.mems'])
        if (existsSync(join(parent, f))) writeFileSync(join(group, f), readFileSync(join(parent, f)));
    }
    const kdir = join(dir, 'kubelet');
    mkdirSync(kdir, { recursive: true });
    writeFileSync(
      join(dir, 'kubelet.yaml'),
      [
        'apiVersion: kubelet.config.k8s.io/v1beta1',
        'kind: KubeletConfiguration',
        'failCgroupV1: false',
        'cgroupDriver: cgroupfs',
        `cgroupRoot: ${cgroupRoot}`,
        `containerRuntimeEndpoint: unix://${containerdSocket}`,
        'authentication: { anonymous: { enabled: true }, webhook: { enabled: false } }',
        'authorization: { mode: AlwaysAllow }',
        'readOnlyPort: 0',
        'failSwapOn: false',
        // No nameserver in the pods: a lookup has nowhere to go, rather than the host's resolvers.
        'resolvConf: ""',
        `podLogsDir: ${join(dir, 'pod-logs')}`,
        `volumePluginDir: ${join(dir, 'volume-plugins')}`,
        'evictionHard: { memory.available: "50Mi", nodefs.available: "1%", imagefs.available: "1%" }',
        'imageGCHighThresholdPercent: 100',
        'serializeImagePulls: false',
        '',
      ].join('\n'),
    );
    started.push(
      await startService({
        name: 'kubelet',
        dir,
        timeoutMs: 90_000,
        command: inNs([
          binary('kubelet'),
          `--config=${join(dir, 'kubelet.yaml')}`,
          `--kubeconfig=${kubeconfigPath}`,
          `--root-dir=${kdir}`,
          `--node-ip=${GATEWAY}`,
          '--hostname-override=localhost',
          '--v=1',
        ]),
        ready: async () => {
          const [program, ...args] = inNs([
            binary('kubectl'),
            `--kubeconfig=${kubeconfigPath}`,
            'get',
            'node',
            'localhost',
            '-o',
            'jsonpath={.status.conditions[?(@.type=="Ready")].status}',
          ]);
          const out = spawnSync(program as string, args, { encoding: 'utf8' });
          return out.stdout.trim() === 'True';
        },
      }),
    );

    return {
      name: 'node',
      log: join(dir, 'kubelet.log'),
      netns,
      dir,
      server,
      apiSocket,
      token,
      caPath,
      kubeconfigPath,
      containerdSocket,
      footprint,
      exec: (command, options) => run(inNs(command), options),
      importImage,
      startInside: async (name, command, ready, env) => {
        const service = await startService({ name, dir, command: inNs(command), ready, env });
        // Before the cluster's own processes, so it stops first.
        started.splice(0, 0, service);
        return service;
      },
      stop,
      pause: () => {
        for (const s of started) s.pause();
      },
      resume: () => {
        for (const s of started) s.resume();
      },
    };
  } catch (e) {
    // The logs outlive a failed start (the folder goes with the node): say where they are.
    const logs = join(CACHE, 'logs', 'node-last-failure');
    rmSync(logs, { recursive: true, force: true });
    mkdirSync(logs, { recursive: true });
    for (const f of readdirSync(dir).filter((n) => n.endsWith('.log')))
      writeFileSync(join(logs, f), readFileSync(join(dir, f)));
    await stop();
    if (e instanceof Error) e.message += `\n(the node's logs: ${logs})`;
    throw e;
  }
}

/**
 * Undoes what the node did to the host, whatever state it was left in: every process that still
 * runs in the namespace (shims and containers outlive containerd), mounts under the node's folder,
 * its cgroups, the namespace itself, the kernel settings, and the host paths it created.
 */
function cleanUp(dir: string, netns: string, footprint: Footprint): void {
  // Every namespace the node made: its own, and the pods' (containerd's `cni-…`, which outlive a
  // containerd that stops without stopping its sandboxes).
  const made = netnsList().filter((n) => !footprint.netnsBefore.includes(n) || n === netns);
  for (const ns of made) {
    const pids = spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' })
      .stdout.split(/\s+/)
      .filter(Boolean);
    for (const pid of pids) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // gone
      }
    }
  }
  // Mounts below the node's folder (overlay snapshots, pod volumes): deepest first.
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4])
    .filter((m): m is string => m?.startsWith(dir) === true)
    .sort((a, b) => b.length - a.length);
  for (const m of mounts) spawnSync('umount', ['-l', m]);
  // The cgroups of the node's root, in every v1 hierarchy: leaves first (rmdir of an empty group).
  for (const hierarchy of existsSync('/sys/fs/cgroup') ? readdirSync('/sys/fs/cgroup') : []) {
    const root = join('/sys/fs/cgroup', hierarchy, footprint.cgroupRoot);
    if (!existsSync(root)) continue;
    const groups = execFileSync('find', [root, '-depth', '-type', 'd'], { encoding: 'utf8' })
      .split('\n')
      .filter(Boolean);
    for (const g of groups) spawnSync('rmdir', [g]);
  }
  for (const ns of made) spawnSync('ip', ['netns', 'delete', ns]);
  for (const [name, value] of Object.entries(footprint.sysctls)) {
    try {
      if (readSysctl(name) !== value) writeFileSync(`/proc/sys/${name}`, value);
    } catch {
      // read-only here: reported by the footprint test
    }
  }
  for (const p of footprint.hostPaths) rmSync(p, { recursive: true, force: true });
  rmSync(dir, { recursive: true, force: true });
}
