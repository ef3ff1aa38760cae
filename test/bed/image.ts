// The sidecar image, built here without Docker (scripts/image.sh: buildah) and run as a kubelet
// would run it with a restrictive securityContext: unpacked by umoci, run by runc as uid 65532,
// with a read-only root filesystem, no capability, no new privileges and a network namespace of
// its own with nothing but a loopback that is down. A host folder is mounted for the socket and one
// for the lake, so the test process talks to it over the Unix socket.
import { execFile, execFileSync } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findBinary, inCI } from './binaries.js';
import { type Service, startService } from './process.js';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
/** The uid (and gid) the image runs as. */
export const IMAGE_UID = 65532;

/** What scripts/image.sh prints: the image, where its archive and layout are, how long it took. */
export interface SidecarImage {
  image: string;
  key: string;
  base: string;
  buildBase: string;
  /** OCI archive, for `ctr -n k8s.io images import`. */
  archive: string;
  /** OCI layout folder, for `umoci unpack --image <layout>:<tag>`. */
  layout: string;
  tag: string;
  archiveBytes: number;
  /** false: everything came from the cache. */
  built: boolean;
  ms: number;
}

const PROGRAMS = ['buildah', 'umoci', 'runc'];

/**
 * Whether the image can be built and run here: root (runc, buildah's storage) and the three
 * programs. In CI a missing piece is an error; elsewhere the tests are skipped with a warning.
 */
export function imageAvailable(): boolean {
  const missing = PROGRAMS.filter((p) => !findBinary(p));
  const why =
    process.getuid?.() !== 0
      ? 'the sidecar image tests need root (buildah, runc)'
      : missing.length > 0
        ? `${missing.join(', ')} not found; run \`npm run provision\``
        : undefined;
  if (why === undefined) return true;
  if (inCI()) throw new Error(why);
  console.warn(`skipping: ${why}`);
  return false;
}

/** Builds the sidecar image (or finds it in the cache, keyed by its inputs): scripts/image.sh. */
export function buildSidecarImage(signal?: AbortSignal): Promise<SidecarImage> {
  return buildImage('sidecar', signal);
}

/** Builds an image of the repository (or finds it in the cache): scripts/image.sh <name>. */
export function buildImage(name: 'sidecar' | 'operator', signal?: AbortSignal): Promise<SidecarImage> {
  return new Promise((resolve, reject) => {
    execFile(
      'bash',
      [join(REPO, 'scripts/image.sh'), name],
      { cwd: REPO, maxBuffer: 64 << 20, ...(signal ? { signal } : {}) },
      (error, stdout, stderr) => {
        if (error)
          return reject(new Error(`scripts/image.sh failed: ${error.message}\n${stderr.slice(-4000)}`));
        const last = stdout.trim().split('\n').at(-1) ?? '';
        try {
          resolve(JSON.parse(last) as SidecarImage);
        } catch {
          reject(
            new Error(`scripts/image.sh printed no summary:\n${stdout.slice(-2000)}\n${stderr.slice(-2000)}`),
          );
        }
      },
    );
  });
}

/** An unpacked image: a runc bundle (config.json + rootfs). */
export interface Bundle {
  dir: string;
  rootfs: string;
  /** Bytes of the unpacked root filesystem. */
  rootfsBytes: number;
}

/** Unpacks the image's OCI layout into `dir` (umoci), as a runtime would before starting it. */
export function unpackSidecarImage(image: SidecarImage, dir: string): Bundle {
  execFileSync('umoci', ['unpack', '--image', `${image.layout}:${image.tag}`, dir], { stdio: 'pipe' });
  const rootfs = join(dir, 'rootfs');
  const rootfsBytes = Number(execFileSync('du', ['-sb', rootfs], { encoding: 'utf8' }).split('\t')[0]);
  return { dir, rootfs, rootfsBytes };
}

/**
 * Restricts a bundle as a pod with `runAsNonRoot`, `readOnlyRootFilesystem: true`,
 * `capabilities: {drop: [ALL]}` and `allowPrivilegeEscalation: false` is: the image's user, no
 * capability, no new privileges, a read-only root, the given mounts. `network: 'none'`: a
 * namespace of its own with nothing in it; `'host'`: the host's (to reach a server on loopback).
 */
export function restrictBundle(
  bundle: Bundle,
  options: {
    args?: string[];
    network: 'none' | 'host';
    mounts?: Array<{ source: string; destination: string; readonly?: boolean }>;
  },
): void {
  const configPath = join(bundle.dir, 'config.json');
  // biome-ignore lint/suspicious/noExplicitAny: the OCI runtime spec as umoci wrote it
  const config = JSON.parse(readFileSync(configPath, 'utf8')) as any;
  config.process.terminal = false;
  if (options.args) config.process.args = [...config.process.args.slice(0, 2), ...options.args];
  const none: string[] = [];
  config.process.capabilities = {
    bounding: none,
    effective: none,
    inheritable: none,
    permitted: none,
    ambient: none,
  };
  config.process.noNewPrivileges = true;
  config.root.readonly = true;
  for (const m of options.mounts ?? [])
    config.mounts.push({
      destination: m.destination,
      type: 'bind',
      source: m.source,
      options: ['rbind', m.readonly ? 'ro' : 'rw', 'nosuid', 'nodev', 'noexec'],
    });
  const namespaces = config.linux.namespaces as Array<{ type: string }>;
  const has = namespaces.some((ns) => ns.type === 'network');
  if (options.network === 'none' && !has) namespaces.push({ type: 'network' });
  if (options.network === 'host') config.linux.namespaces = namespaces.filter((ns) => ns.type !== 'network');
  writeFileSync(configPath, JSON.stringify(config, null, 2));
}

/** Runs a restricted bundle to its end (`runc run`); its exit status and output. */
export function runBundleOnce(
  bundle: Bundle,
  stateDir: string,
): { status: number; stdout: string; stderr: string } {
  const runcRoot = join(stateDir, 'runc');
  mkdirSync(runcRoot, { recursive: true });
  const id = `tarn-once-${process.pid}-${++n}`;
  try {
    const stdout = execFileSync('runc', ['--root', runcRoot, 'run', '--bundle', bundle.dir, id], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 60_000,
    });
    return { status: 0, stdout, stderr: '' };
  } catch (e) {
    const err = e as { status: number; stdout: string; stderr: string };
    return { status: err.status, stdout: err.stdout, stderr: err.stderr };
  } finally {
    try {
      execFileSync('runc', ['--root', runcRoot, 'delete', '--force', id], { stdio: 'pipe' });
    } catch {
      // already gone
    }
  }
}

/** Starts a restricted bundle as a service (`runc run`), ready when `ready` says so. */
export async function startBundle(
  bundle: Bundle,
  stateDir: string,
  ready: () => Promise<boolean>,
): Promise<Service & { hostPid(): number }> {
  const runcRoot = join(stateDir, 'runc');
  mkdirSync(runcRoot, { recursive: true });
  const id = `tarn-run-${process.pid}-${++n}`;
  const runc = (...args: string[]) => ['--root', runcRoot, ...args];
  const service = await startService({
    name: id,
    command: ['runc', ...runc('run', '--bundle', bundle.dir, id)],
    dir: stateDir,
    ready,
    timeoutMs: 60_000,
  });
  return {
    ...service,
    hostPid: () =>
      (JSON.parse(execFileSync('runc', runc('state', id), { encoding: 'utf8' })) as { pid: number }).pid,
    async stop() {
      await service.stop();
      try {
        execFileSync('runc', runc('delete', '--force', id), { stdio: 'pipe' });
      } catch {
        // already gone
      }
    },
  };
}

export interface RunOptions {
  /** Arguments after the entrypoint; default the image's CMD (lake /var/lib/tarn, socket /run/tarn/tarn.sock). */
  args?: string[];
  /** Host folder mounted at /run/tarn (the socket's folder); made and given to uid 65532. */
  socketDir: string;
  /** Host folder mounted at /var/lib/tarn (the lake); made and given to uid 65532. */
  lakeDir: string;
  /** Where runc keeps its state and the service its log. */
  stateDir: string;
}

export interface RunningImage extends Service {
  /** The container's id for runc (`runc --root <runcRoot> ...`). */
  id: string;
  runcRoot: string;
  /** The socket, as the host sees it. */
  socket: string;
  /** The container's init (node), as the host sees it. */
  hostPid(): number;
  /** Runs a program inside the running container (`runc exec`, same user and restrictions). */
  exec(args: string[]): { status: number; stdout: string; stderr: string };
}

let n = 0;

/**
 * Runs an unpacked image under runc, restricted as a pod with `runAsNonRoot`,
 * `readOnlyRootFilesystem: true`, `capabilities: {drop: [ALL]}` and
 * `allowPrivilegeEscalation: false` is; resolves once `/healthz` answers over the socket.
 * Stopping sends SIGTERM (runc forwards it to the server), as the kubelet does.
 */
export async function runSidecarImage(bundle: Bundle, options: RunOptions): Promise<RunningImage> {
  for (const dir of [options.socketDir, options.lakeDir]) {
    mkdirSync(dir, { recursive: true });
    chownSync(dir, IMAGE_UID, IMAGE_UID);
  }
  const runcRoot = join(options.stateDir, 'runc');
  mkdirSync(runcRoot, { recursive: true });
  // A network namespace of its own and no interface in it: nothing but the socket reaches it.
  restrictBundle(bundle, {
    args: options.args,
    network: 'none',
    mounts: [
      { source: options.socketDir, destination: '/run/tarn' },
      { source: options.lakeDir, destination: '/var/lib/tarn' },
    ],
  });

  const id = `tarn-image-${process.pid}-${++n}`;
  const socket = join(options.socketDir, 'tarn.sock');
  const runc = (...args: string[]) => ['--root', runcRoot, ...args];
  const service = await startService({
    name: id,
    command: ['runc', ...runc('run', '--bundle', bundle.dir, id)],
    dir: options.stateDir,
    ready: async () => existsSync(socket) && (await healthz(socket)),
    timeoutMs: 30_000,
  });
  const hostPid = () =>
    (JSON.parse(execFileSync('runc', runc('state', id), { encoding: 'utf8' })) as { pid: number }).pid;
  return {
    ...service,
    id,
    runcRoot,
    socket,
    hostPid,
    exec(args) {
      try {
        const stdout = execFileSync('runc', runc('exec', id, ...args), {
          encoding: 'utf8',
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        return { status: 0, stdout, stderr: '' };
      } catch (e) {
        const err = e as { status: number; stdout: string; stderr: string };
        return { status: err.status, stdout: err.stdout, stderr: err.stderr };
      }
    },
    async stop() {
      await service.stop();
      // runc run removes the container when it exits; a container left by a failed stop goes too.
      try {
        execFileSync('runc', runc('delete', '--force', id), { stdio: 'pipe' });
      } catch {
        // already gone
      }
    },
  };
}

/** Whether GET /healthz answers 200 over the socket. */
function healthz(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ socketPath, path: '/healthz', agent: false, timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.once('timeout', () => req.destroy());
    req.once('error', () => resolve(false));
    req.end();
  });
}
