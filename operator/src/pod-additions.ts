import {
  CONFIG_DIR,
  CONFIG_FILE,
  CONFIG_HASH_ANNOTATION,
  CONFIG_VOLUME,
  configMapName,
  INJECTED_LABEL,
  SIDECAR_CONTAINER,
  SIDECAR_ENV,
  SOCKET_DIR,
  SOCKET_PATH,
  SOCKET_VOLUME,
} from './names.js';
import type { Rendered } from './render.js';
import type { StorageSpec } from './spec.js';

/** The sidecar's user: non-root, the same in every pod, so the lakes' files are its own. */
export const SIDECAR_UID = 65532;

const DEFAULT_RESOURCES = {
  requests: { cpu: '50m', memory: '64Mi' },
  limits: { cpu: '1', memory: '512Mi' },
};

export interface AdditionsInput {
  /** The TarnStorage's name (its ConfigMap is `tarn-<name>`). */
  storage: string;
  spec: StorageSpec;
  rendered: Rendered;
  /** The sidecar image when the spec names none (the operator's own version). */
  defaultImage: string;
  /** The names of the pod's app containers: each gets the socket, the lakes and $TARN_SIDECAR. */
  containers: readonly string[];
}

/** The part of a pod template the operator owns, in the core API's shape (a server-side apply body). */
export interface PodTemplateAdditions {
  metadata: { labels: Record<string, string>; annotations: Record<string, string> };
  spec: {
    initContainers: Array<Record<string, unknown>>;
    containers: Array<Record<string, unknown>>;
    volumes: Array<Record<string, unknown>>;
  };
}

/**
 * The one function that turns a storage and a pod's containers into what the pod gets: the sidecar
 * as a native sidecar (an init container that keeps running, started and probed before the app
 * containers), its config and socket volumes, the lakes' volumes, and in every app container the
 * socket, the lakes read-only at the sidecar's paths (zero-copy reads), the exchange folder, and
 * $TARN_SIDECAR. Deployments get it by server-side apply (reconcile/workload.ts); the same output
 * serves an admission webhook for bare pods. Pure: the same input gives the same output, so an
 * apply that changes nothing changes nothing, and the pod template's hash moves only with the config.
 */
export function podAdditions(input: AdditionsInput): PodTemplateAdditions {
  const { rendered, spec } = input;
  const sidecar = spec.sidecar;
  // The image's own entrypoint script (sidecar/Dockerfile), in probe mode: no shell, no PATH lookup.
  const probe = {
    exec: { command: ['node', '/app/sidecar/bin/tarn-sidecar.js', 'probe', '--socket', SOCKET_PATH] },
    timeoutSeconds: 5,
  };
  const socketMount = { name: SOCKET_VOLUME, mountPath: SOCKET_DIR };
  const sidecarContainer = {
    name: SIDECAR_CONTAINER,
    image: sidecar?.image ?? input.defaultImage,
    imagePullPolicy: 'IfNotPresent',
    // Native sidecar: started before the app containers, stopped after them; a Job still completes.
    restartPolicy: 'Always',
    args: ['--config', `${CONFIG_DIR}/${CONFIG_FILE}`],
    env: rendered.env,
    volumeMounts: [
      socketMount,
      { name: CONFIG_VOLUME, mountPath: CONFIG_DIR, readOnly: true },
      ...rendered.mounts.map((m) => ({ name: m.name, mountPath: m.mountPath })),
    ],
    // The app containers start once the sidecar answers /readyz.
    startupProbe: { ...probe, periodSeconds: 1, failureThreshold: 120 },
    readinessProbe: { ...probe, periodSeconds: 10, failureThreshold: 3 },
    resources: {
      requests: { ...DEFAULT_RESOURCES.requests, ...sidecar?.resources?.requests },
      limits: { ...DEFAULT_RESOURCES.limits, ...sidecar?.resources?.limits },
    },
    securityContext: {
      runAsNonRoot: true,
      runAsUser: SIDECAR_UID,
      runAsGroup: SIDECAR_UID,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    },
  };
  const appMounts = [
    socketMount,
    ...rendered.mounts.map((m) => ({
      name: m.name,
      mountPath: m.mountPath,
      ...(m.lake ? { readOnly: true } : {}),
    })),
  ];
  return {
    // The label marks a pod that has its sidecar already: the admission webhook's objectSelector
    // leaves such pods (a Deployment's, from its template) alone, so they never wait on it.
    metadata: {
      labels: { [INJECTED_LABEL]: input.storage },
      annotations: { [CONFIG_HASH_ANNOTATION]: rendered.hash },
    },
    spec: {
      initContainers: [sidecarContainer],
      containers: input.containers.map((name) => ({
        name,
        env: [{ name: SIDECAR_ENV, value: SOCKET_PATH }],
        volumeMounts: appMounts,
      })),
      volumes: [
        { name: SOCKET_VOLUME, emptyDir: {} },
        { name: CONFIG_VOLUME, configMap: { name: configMapName(input.storage) } },
        ...rendered.volumes,
      ],
    },
  };
}

/** The containers of a pod spec that are the app's (not the sidecar the operator added). */
export function appContainersOf(podSpec: { containers?: Array<{ name?: string }> } | undefined): string[] {
  return (podSpec?.containers ?? [])
    .map((c) => c.name ?? '')
    .filter((n) => n !== '' && n !== SIDECAR_CONTAINER);
}
