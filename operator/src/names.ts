/** The names the operator and its CRD share with the cluster: one place, so they never drift. */
export const GROUP = 'tarn.dev';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;
export const KIND = 'TarnStorage';
export const LIST_KIND = 'TarnStorageList';
export const PLURAL = 'tarnstorages';
export const SINGULAR = 'tarnstorage';
export const SHORT_NAMES = ['tarn', 'ts'];

/** A workload opts in with this label; its value names the TarnStorage (same namespace). */
export const STORAGE_LABEL = `${GROUP}/storage`;
/** On a pod: `"true"` admits it without the sidecar when its TarnStorage is missing or not Ready. */
export const OPTIONAL_LABEL = `${GROUP}/optional`;
/** Set by the operator on a workload it changed: found again after the user removes the label. */
export const INJECTED_LABEL = `${GROUP}/injected`;
/** On the pod template: the sidecar config's hash, so pods roll when the storage changes (only then). */
export const CONFIG_HASH_ANNOTATION = `${GROUP}/config-hash`;
/** On the ConfigMaps the operator owns. */
export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
export const MANAGER = 'tarn-operator';
/** The field manager of every server-side apply the operator makes. */
export const FIELD_MANAGER = 'tarn-operator';
export const FINALIZER = `${GROUP}/cleanup`;

/** What the operator adds to a pod, by name: its volumes, the sidecar container, the env variable. */
export const SIDECAR_CONTAINER = 'tarn-sidecar';
export const SOCKET_VOLUME = 'tarn-socket';
export const CONFIG_VOLUME = 'tarn-config';
export const EXCHANGE_VOLUME = 'tarn-exchange';
export const SOCKET_DIR = '/run/tarn';
export const SOCKET_PATH = `${SOCKET_DIR}/tarn.sock`;
export const CONFIG_DIR = '/etc/tarn';
export const CONFIG_FILE = 'tarn.yaml';
export const SIDECAR_ENV = 'TARN_SIDECAR';
/** A disk node's volume: `tarn-<node>`. */
export const nodeVolume = (node: string) => `tarn-${node}`;
/** The ConfigMap of a TarnStorage. */
export const configMapName = (storage: string) => `tarn-${storage}`;

/** Where the webhook answers AdmissionReviews (the chart's clientConfig.service.path). */
export const WEBHOOK_PATH = '/mutate-pods';
