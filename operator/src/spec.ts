import {
  diskConfig,
  nginxConfig,
  redisConfig,
  s3Config,
  scpConfig,
  serveConfig,
  sftpConfig,
  size,
} from '@tarnjs/tarn/config-schema';
import { z } from 'zod';

/**
 * The spec of a TarnStorage (tarn.dev/v1alpha1): the library's config, reshaped for Kubernetes.
 * Each location kind keeps the library's own fields (its zod schema, so one schema describes both),
 * except what a cluster gives differently:
 * - a tree cannot be recursive in a CRD: the locations are a list of named `nodes` that name their
 *   children, plus a `root`;
 * - a disk lake's folder is a volume of the pod (hostPath, emptyDir, PVC) and where it is mounted;
 * - credentials are Secret references (`secretKeyRef`), never values: the operator hands them to
 *   the sidecar as environment variables, and the config names the variables.
 * The CRD's OpenAPI schema is generated from this (crd/generate.ts); the operator checks each spec
 * against it again, and checks what a CRD cannot (no cycles).
 */

/** A node's name: a DNS label short enough to prefix (`tarn-<name>` names its volume). */
export const nodeName = z
  .string()
  .min(1)
  .max(40)
  .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'a lowercase DNS label (a-z, 0-9, -)')
  .describe('A node name: lowercase letters, digits and dashes, at most 40');

const objectName = z
  .string()
  .min(1)
  .max(253)
  .regex(/^[a-z0-9]([-.a-z0-9]*[a-z0-9])?$/, 'a Kubernetes object name')
  .describe('Name of an object in the TarnStorage’s namespace');

const absolutePath = z
  .string()
  .min(1)
  .max(1024)
  .regex(/^\/[^\0]*$/, 'an absolute path')
  .describe('An absolute path');

export const secretKeyRef = z
  .object({
    name: objectName.describe('The Secret, in the TarnStorage’s namespace'),
    key: z.string().min(1).max(253).describe('The key in the Secret'),
  })
  .strict()
  .meta({ id: 'SecretKeyRef', description: 'A key of a Secret' });

export const volumeSource = z
  .object({
    hostPath: z
      .object({
        path: absolutePath.describe('Folder on the node; created when missing'),
      })
      .strict()
      .optional()
      .describe('A folder of the node: shared by every pod of the storage on that node'),
    emptyDir: z
      .object({
        sizeLimit: z.string().max(64).optional().describe('A quantity, e.g. 10Gi'),
        medium: z.enum(['', 'Memory']).optional().describe('Memory: tmpfs'),
      })
      .strict()
      .optional()
      .describe('A folder of the pod, gone with it'),
    persistentVolumeClaim: z
      .object({ claimName: objectName.describe('The claim, in the TarnStorage’s namespace') })
      .strict()
      .optional()
      .describe('A PersistentVolumeClaim'),
  })
  .strict()
  .meta({ id: 'VolumeSource', description: 'Where a disk lake lives: exactly one of these' });

export const diskNode = diskConfig
  .omit({ kind: true, root: true, create: true })
  .extend({
    volume: volumeSource,
    mountPath: absolutePath.describe(
      'Where the lake is mounted in the sidecar, and read-only at the same path in the app containers (zero-copy reads)',
    ),
  })
  .strict()
  .meta({ id: 'DiskNode', description: 'A lake folder on a volume of the pod' });

export const redisNode = redisConfig
  .omit({ kind: true, password: true })
  .extend({ passwordSecretRef: secretKeyRef.optional().describe('The password') })
  .strict()
  .meta({ id: 'RedisNode', description: 'Values in Redis' });

export const s3Node = s3Config
  .omit({ kind: true, credentials: true })
  .extend({
    credentials: z
      .object({
        accessKeyId: secretKeyRef,
        secretAccessKey: secretKeyRef,
        sessionToken: secretKeyRef.optional(),
      })
      .strict()
      .optional()
      .describe('Keys from Secrets; leave out to use the pod’s AWS chain (IRSA, env)'),
  })
  .strict()
  .meta({ id: 'S3Node', description: 'Values as objects of an S3 bucket' });

const sshOmit = {
  kind: true,
  privateKeyPath: true,
  privateKey: true,
  passphrase: true,
  agent: true,
  knownHostsPath: true,
  hostKeyFingerprint: true,
} as const;
const sshRefs = {
  privateKey: secretKeyRef.describe('Private key contents (OpenSSH format)'),
  passphrase: secretKeyRef.optional().describe('Passphrase of the private key'),
  // No known_hosts file in a pod: the host key is pinned, always.
  hostKeyFingerprint: z
    .string()
    .max(128)
    .regex(/^SHA256:/)
    .describe('The host key, pinned: SHA256:... as ssh-keygen -l prints it'),
};

export const sftpNode = sftpConfig
  .omit(sshOmit)
  .extend(sshRefs)
  .strict()
  .meta({ id: 'SFTPNode', description: 'A lake on an SSH host, over SFTP' });

export const scpNode = scpConfig
  .omit(sshOmit)
  .extend(sshRefs)
  .strict()
  .meta({ id: 'SCPNode', description: 'A lake on an SSH host, over scp' });

export const nginxNode = nginxConfig
  .omit({ kind: true, headers: true })
  .strict()
  .meta({ id: 'NginxNode', description: 'A read-only lake served by nginx' });

export const levelsNode = z
  .object({
    levels: z
      .array(
        z
          .object({
            node: nodeName.describe('The node at this level'),
            write: z.boolean().optional().describe('Writes may go here (default true)'),
            replicate: z.boolean().optional().describe('A hit below is copied here (default true)'),
            touch: z.boolean().optional().describe('Record uses of keys served from above (default false)'),
            timeoutMs: z.number().int().positive().optional().describe('Give up on lookups here after this'),
          })
          .strict(),
      )
      .min(1)
      .max(8)
      .describe('Levels from the top (fastest) down'),
    copies: z
      .enum(['all', 'first'])
      .optional()
      .describe('Copy-on-read into every level above a hit, or the first'),
  })
  .strict()
  .meta({ id: 'LevelsNode', description: 'A cache hierarchy with copy-on-read' });

export const fanoutNode = z
  .object({ members: z.array(nodeName).min(1).max(8).describe('Nodes tried one after the other') })
  .strict()
  .meta({ id: 'FanoutNode', description: 'Several nodes as one' });

export const smallNode = z
  .object({
    maxSize: size.describe('Largest value let through'),
    node: nodeName.describe('The node that gets the small values'),
  })
  .strict()
  .meta({ id: 'SmallNode', description: 'Only small values into a node (Redis above a disk)' });

/** The kinds a node can be, by field name; exactly one is set. */
export const NODE_KINDS = [
  'disk',
  'redis',
  's3',
  'sftp',
  'scp',
  'nginx',
  'levels',
  'fanout',
  'small',
] as const;
export type NodeKind = (typeof NODE_KINDS)[number];

export const storageNode = z
  .object({
    name: nodeName,
    disk: diskNode.optional(),
    redis: redisNode.optional(),
    s3: s3Node.optional(),
    sftp: sftpNode.optional(),
    scp: scpNode.optional(),
    nginx: nginxNode.optional(),
    levels: levelsNode.optional(),
    fanout: fanoutNode.optional(),
    small: smallNode.optional(),
  })
  .strict()
  .meta({ id: 'StorageNode', description: 'A named location: exactly one of its kinds' });

const quantity = z.string().max(64).describe('A quantity, e.g. 100m or 128Mi');
const resourceList = z.object({ cpu: quantity.optional(), memory: quantity.optional() }).strict();

/** How the sidecar serves, as `serve` in the library's config; the socket is the operator's. */
export const sidecarServe = serveConfig
  .pick({
    allowDelete: true,
    bodyLimit: true,
    maxUploads: true,
    requestTimeoutMs: true,
    idleTimeoutMs: true,
    headersTimeoutMs: true,
    drainTimeoutMs: true,
    hotCache: true,
  })
  .strict();

export const sidecarSpec = z
  .object({
    image: z.string().min(1).max(512).optional().describe('The sidecar image (default: the operator’s)'),
    resources: z
      .object({ requests: resourceList.optional(), limits: resourceList.optional() })
      .strict()
      .optional()
      .describe('Of the sidecar container (default requests 50m/64Mi, limits 1 CPU/512Mi)'),
    serve: sidecarServe.optional().describe('How the sidecar serves (the library’s serve settings)'),
    exchange: z
      .object({
        mountPath: absolutePath.describe('Where the folder is mounted in every container of the pod'),
        sizeLimit: z.string().max(64).optional().describe('A quantity, e.g. 10Gi'),
      })
      .strict()
      .optional()
      .describe(
        'A folder shared by every container of the pod whose files the sidecar stores by reading them (POST /v1/blobs/ingest): zero-copy writes',
      ),
  })
  .strict()
  .meta({ id: 'SidecarSpec', description: 'The sidecar the operator adds to each workload' });

export const storageSpec = z
  .object({
    algorithm: z.string().min(1).max(40).optional().describe('Digest of keys (default sha256)'),
    root: nodeName.describe('The node the storage is'),
    nodes: z.array(storageNode).min(1).max(32).describe('The locations, by name'),
    memo: z
      .object({ index: nodeName.describe('The node holding smartCache’s index (shared by every pod)') })
      .strict()
      .optional()
      .describe('Where memo entries go (default: the tree’s disk lakes)'),
    sidecar: sidecarSpec.optional(),
  })
  .strict()
  .meta({ id: 'TarnStorageSpec', description: 'A tarn storage for the workloads labelled tarn.dev/storage' });

export type StorageSpec = z.infer<typeof storageSpec>;
export type StorageNode = z.infer<typeof storageNode>;
export type DiskNode = z.infer<typeof diskNode>;
export type SecretKeyRef = z.infer<typeof secretKeyRef>;
