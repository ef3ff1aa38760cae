import { accessSync, constants, existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

export const CACHE = process.env.TARN_CACHE_DIR ?? join(homedir(), '.cache', 'tarn-ts');
export const CACHE_BIN = join(CACHE, 'bin');

const SEARCH = [CACHE_BIN, '/usr/sbin', '/usr/bin', '/usr/local/bin', '/usr/lib/openssh'];

/** The absolute path of a program the bed needs, or undefined. */
export function findBinary(name: string): string | undefined {
  for (const dir of SEARCH) {
    const path = join(dir, name);
    try {
      accessSync(path, constants.X_OK);
      return path;
    } catch {
      // not here
    }
  }
  return undefined;
}

export type ServiceName = 'redis' | 'sshd' | 'nginx' | 's3' | 'kube' | 'node';

/** The local programs each service of the bed runs (the kube smoke test also renders with helm). */
export const PROGRAMS: Record<ServiceName, string[]> = {
  redis: ['redis-server'],
  sshd: ['sshd', 'ssh-keygen', 'ssh', 'sftp', 'scp'],
  nginx: ['nginx'],
  s3: ['minio'],
  kube: ['etcd', 'kube-apiserver', 'kube-controller-manager', 'helm'],
  // A real node (node.ts): local only, never a container.
  node: [
    'etcd',
    'kube-apiserver',
    'kube-controller-manager',
    'kube-scheduler',
    'kubelet',
    'kubectl',
    'containerd',
    'ctr',
    'nsenter',
    'ip',
    'buildah',
  ],
};

/**
 * How a service is run: `local` programs (the default, and the only way on machines without Docker)
 * or `docker` containers (TARN_BED=docker, or automatically when the programs are missing and a
 * Docker engine is reachable). Undefined: neither is possible.
 */
export function provider(service: ServiceName): 'local' | 'docker' | undefined {
  const mode = process.env.TARN_BED ?? 'auto';
  if (mode === 'docker') return 'docker';
  const local = PROGRAMS[service].every((p) => findBinary(p));
  if (local) return 'local';
  if (mode === 'local') return undefined;
  return dockerReachable() ? 'docker' : undefined;
}

/** Whether a Docker engine looks reachable (DOCKER_HOST, or the default socket exists). */
export function dockerReachable(): boolean {
  return Boolean(process.env.DOCKER_HOST) || existsSync('/var/run/docker.sock');
}

/**
 * Whether this run is CI. CI systems set CI to `true`, `1`, `yes` or a name; only an empty value,
 * `0` or `false` mean "not CI", so no spelling of it can turn a missing service into a skip.
 */
export function inCI(env: NodeJS.ProcessEnv = process.env): boolean {
  const v = env.CI?.trim().toLowerCase();
  return v !== undefined && v !== '' && v !== '0' && v !== 'false' && v !== 'no';
}

/**
 * Whether a service can run here. In CI a service that cannot is an error (the suite must not pass
 * by skipping); elsewhere its tests are skipped with a warning that says how to install it, and they
 * show as skipped in the run (use it in `describe.runIf`, never in an `if` around a suite).
 */
export function available(service: ServiceName): boolean {
  if (provider(service)) return true;
  return unavailable(service, PROGRAMS[service]);
}

/**
 * Whether the local programs of a service are installed, whatever the provider: for tests of the
 * local bed itself (tethers, PIDs), which the Docker provider cannot stand in for.
 */
export function availableLocally(service: ServiceName): boolean {
  if (PROGRAMS[service].every((p) => findBinary(p))) return true;
  return unavailable(service, PROGRAMS[service]);
}

function unavailable(service: ServiceName, programs: string[]): false {
  const missing = programs.filter((p) => !findBinary(p));
  const message = `${service}: ${missing.join(', ')} not found in ${SEARCH.join(', ')}; run \`npm run provision\``;
  if (inCI()) throw new Error(message);
  console.warn(`skipping ${message}`);
  return false;
}

export function binary(name: string): string {
  const path = findBinary(name);
  if (!path) throw new Error(`${name} is not installed; run \`npm run provision\``);
  return path;
}
