import { createHash } from 'node:crypto';
import type { LocationConfig, StorageConfig } from '@tarnjs/tarn';
import { parseConfig } from '@tarnjs/tarn';
import { stringify } from 'yaml';
import { EXCHANGE_VOLUME, nodeVolume, SOCKET_PATH } from './names.js';
import type { SecretKeyRef, StorageNode, StorageSpec } from './spec.js';
import { InvalidSpecError, kindOf } from './validate.js';

/** An environment variable of the sidecar that holds a secret, from a Secret's key. */
export interface SecretEnv {
  name: string;
  valueFrom: { secretKeyRef: { name: string; key: string } };
}

/** A volume of the pod, in the core API's shape. */
export type PodVolume = { name: string } & Record<string, unknown>;

/** What a TarnStorage becomes: the sidecar's config and what the pod needs to run it. */
export interface Rendered {
  /** The library's config, as the sidecar reads it (tarn.yaml in the ConfigMap). */
  config: StorageConfig;
  yaml: string;
  /** Hash of the config: on the pod template, so pods roll when (and only when) it changes. */
  hash: string;
  /** The sidecar's secrets, by reference: never in the ConfigMap. */
  env: SecretEnv[];
  /** Volumes the pod gets: the disk nodes' and the exchange folder. */
  volumes: PodVolume[];
  /** Where those are mounted: `readOnly` in the app containers except the exchange folder. */
  mounts: Array<{ name: string; mountPath: string; lake: boolean }>;
}

/** `TARN_<NODE>_<FIELD>`: the variable the sidecar reads one secret from. */
function envName(node: string, field: string): string {
  return `TARN_${node}_${field}`.toUpperCase().replace(/[^A-Z0-9_]/g, '_');
}

/** Renders a checked spec (validateSpec) into the sidecar's config and the pod's needs. */
export function render(spec: StorageSpec): Rendered {
  const env: SecretEnv[] = [];
  const volumes: PodVolume[] = [];
  const mounts: Rendered['mounts'] = [];
  const secret = (node: string, field: string, ref: SecretKeyRef) => {
    const name = envName(node, field);
    env.push({ name, valueFrom: { secretKeyRef: { name: ref.name, key: ref.key } } });
    return { env: name };
  };
  const ref = (name: string) => ({ ref: name });

  const locationOf = (node: StorageNode): LocationConfig => {
    const n = node.name;
    switch (kindOf(node)) {
      case 'disk': {
        const { volume, mountPath, ...rest } = node.disk as NonNullable<StorageNode['disk']>;
        const vname = nodeVolume(n);
        if (volume.hostPath)
          volumes.push({ name: vname, hostPath: { path: volume.hostPath.path, type: 'DirectoryOrCreate' } });
        else if (volume.emptyDir) volumes.push({ name: vname, emptyDir: { ...volume.emptyDir } });
        else if (volume.persistentVolumeClaim)
          volumes.push({
            name: vname,
            persistentVolumeClaim: { claimName: volume.persistentVolumeClaim.claimName },
          });
        mounts.push({ name: vname, mountPath, lake: true });
        return { kind: 'disk', root: mountPath, ...rest };
      }
      case 'redis': {
        const { passwordSecretRef, ...rest } = node.redis as NonNullable<StorageNode['redis']>;
        return {
          kind: 'redis',
          ...rest,
          ...(passwordSecretRef ? { password: secret(n, 'password', passwordSecretRef) } : {}),
        };
      }
      case 's3': {
        const { credentials, ...rest } = node.s3 as NonNullable<StorageNode['s3']>;
        return {
          kind: 's3',
          ...rest,
          ...(credentials
            ? {
                credentials: {
                  accessKeyId: secret(n, 'access_key_id', credentials.accessKeyId),
                  secretAccessKey: secret(n, 'secret_access_key', credentials.secretAccessKey),
                  ...(credentials.sessionToken
                    ? { sessionToken: secret(n, 'session_token', credentials.sessionToken) }
                    : {}),
                },
              }
            : {}),
        };
      }
      case 'sftp':
      case 'scp': {
        const kind = node.sftp ? 'sftp' : 'scp';
        const { privateKey, passphrase, ...rest } = (node.sftp ?? node.scp) as NonNullable<
          StorageNode['scp']
        >;
        return {
          kind,
          ...rest,
          privateKey: secret(n, 'private_key', privateKey),
          ...(passphrase ? { passphrase: secret(n, 'passphrase', passphrase) } : {}),
        } as LocationConfig;
      }
      case 'nginx':
        return { kind: 'nginx', ...(node.nginx as NonNullable<StorageNode['nginx']>) };
      case 'levels': {
        const { levels, copies } = node.levels as NonNullable<StorageNode['levels']>;
        return {
          kind: 'levels',
          levels: levels.map(({ node: child, ...options }) => ({
            location: ref(child),
            name: child,
            ...options,
          })),
          ...(copies ? { copies } : {}),
        };
      }
      case 'fanout':
        return {
          kind: 'fanout',
          members: (node.fanout as NonNullable<StorageNode['fanout']>).members.map(ref),
        };
      case 'small': {
        const { maxSize, node: child } = node.small as NonNullable<StorageNode['small']>;
        return { kind: 'small', maxSize, location: ref(child) };
      }
    }
  };

  const locations = Object.fromEntries(spec.nodes.map((node) => [node.name, locationOf(node)]));
  const exchange = spec.sidecar?.exchange;
  if (exchange) {
    volumes.push({
      name: EXCHANGE_VOLUME,
      emptyDir: exchange.sizeLimit ? { sizeLimit: exchange.sizeLimit } : {},
    });
    mounts.push({ name: EXCHANGE_VOLUME, mountPath: exchange.mountPath, lake: false });
  }
  const raw: StorageConfig = {
    ...(spec.algorithm ? { algorithm: spec.algorithm } : {}),
    location: ref(spec.root),
    locations,
    ...(spec.memo ? { memo: { index: ref(spec.memo.index) } } : {}),
    serve: {
      ...spec.sidecar?.serve,
      socket: SOCKET_PATH,
      // The socket's folder is an emptyDir of this pod alone: every container of the pod may
      // connect, whatever its user, and nobody outside it can reach the file.
      socketMode: '0666',
      ...(exchange ? { ingestRoots: [exchange.mountPath] } : {}),
    },
  } as StorageConfig;
  let config: StorageConfig;
  try {
    // The library's own check of what the sidecar will load (sizes, URLs, the digest's name).
    config = parseConfig(raw, 'the rendered sidecar config');
  } catch (e) {
    throw new InvalidSpecError((e as Error).message);
  }
  const yaml = stringify(raw, { lineWidth: 0 });
  const hash = createHash('sha256').update(yaml).digest('hex').slice(0, 16);
  return { config, yaml, hash, env, volumes, mounts };
}
