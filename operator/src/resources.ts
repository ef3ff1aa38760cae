import { API_VERSION, PLURAL } from './names.js';

/** Where each kind the operator reads or writes lives in the API, by namespace and name. */
export interface Resource {
  apiVersion: string;
  kind: string;
  /** The collection in a namespace. */
  collection(namespace: string): string;
  /** The collection across namespaces (for watches). */
  all: string;
}

function resource(apiVersion: string, kind: string, plural: string): Resource {
  const base = apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
  return {
    apiVersion,
    kind,
    collection: (namespace) => `${base}/namespaces/${encodeURIComponent(namespace)}/${plural}`,
    all: `${base}/${plural}`,
  };
}

export const STORAGES = resource(API_VERSION, 'TarnStorage', PLURAL);
export const CONFIG_MAPS = resource('v1', 'ConfigMap', 'configmaps');
export const EVENTS = resource('v1', 'Event', 'events');
export const SECRETS = resource('v1', 'Secret', 'secrets');
/** Cluster-scoped: the webhook's configuration, whose caBundle the operator keeps current. */
export const MUTATING_WEBHOOKS = '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations';
/** The workloads whose pod template the operator extends. */
export const WORKLOADS = [
  resource('apps/v1', 'Deployment', 'deployments'),
  resource('apps/v1', 'StatefulSet', 'statefulsets'),
  resource('apps/v1', 'DaemonSet', 'daemonsets'),
] as const;

export const objectPath = (r: Resource, namespace: string, name: string) =>
  `${r.collection(namespace)}/${encodeURIComponent(name)}`;
