import { z } from 'zod';
import { ConfigError } from '../errors.js';
import { parseSize, SIZE_PATTERN } from '../util/size.js';
import { hasSecretParam, hasUserInfo, NO_USER_INFO } from '../util/url.js';

/**
 * The declarative description of a storage: the digest, and a tree of locations. One schema for
 * config files, the CLI, the sidecar and (through its JSON Schema) the Kubernetes CRD.
 *
 * A location node is a folder path (a disk lake), a list (a fanout of its elements), an object with
 * a `kind`, or `{ ref: <name> }` naming an entry of the top-level `locations`. Every object is
 * strict, so a misspelt field is an error rather than a silently ignored option. Secrets (passwords,
 * keys) are never inline: they are `{ env: VAR }` or `{ file: /path }` and are read at build time.
 */

const NOT_A_SIZE = 'not a size; use bytes or a number with a unit (10G, 512MiB)';

/**
 * Bytes, as an integer or a humanfriendly size string (`100K`, `10MiB`, `500G`). The pattern (which
 * matches in linear time) is for the JSON Schema; parseSize, which uses it too, has the last word
 * (a known unit, a safe integer).
 */
export const size = z
  .union([z.number().int().nonnegative(), z.string().regex(SIZE_PATTERN)], {
    error: (issue) => (issue.input === undefined ? 'required' : NOT_A_SIZE),
  })
  .refine((v) => sizeProblem(v) === undefined, { error: (issue) => sizeProblem(issue.input) ?? NOT_A_SIZE })
  .describe('Bytes: an integer, or a number with a unit (100K, 10M, 500G decimal; 10MiB binary)');

/** What parseSize says is wrong with a size (`10000P` is too large), if anything. */
function sizeProblem(v: unknown): string | undefined {
  // zod runs this refinement even when the pattern has failed: parseSize checks everything again.
  try {
    parseSize(v);
    return undefined;
  } catch (e) {
    return e instanceof ConfigError ? e.detail : NOT_A_SIZE;
  }
}

/** A local file or folder: no file system takes a name with a NUL character in it. */
const localPath = () =>
  z
    .string()
    .min(1)
    .refine((p) => !p.includes('\0'), { message: 'a path cannot contain a NUL character' });

const ms = (what: string) => z.number().int().positive().describe(`${what}, in milliseconds`);

export const secret = z
  .union(
    [
      z
        .object({ env: z.string().min(1).describe('Name of the environment variable holding the secret') })
        .strict(),
      z
        .object({
          file: localPath().describe(
            'File holding the secret (a trailing newline is dropped); relative to the config file',
          ),
        })
        .strict(),
    ],
    {
      error: (issue) =>
        issue.input === undefined
          ? 'required'
          : 'a secret is never inline: give { env: VAR } or { file: /path }',
    },
  )
  .meta({
    id: 'Secret',
    description: 'A secret, read at build time from an environment variable or a file; never inline',
  });

export const diskConfig = z
  .object({
    kind: z.literal('disk'),
    root: localPath().describe('Folder of the lake; relative paths are relative to the config file'),
    levels: z
      .array(z.number().int())
      .optional()
      .describe('Folder layout of a new lake (default [1, -1]); must match an existing lake'),
    maxSize: size.optional().describe('Byte cap of a new lake (config.yml max_size), e.g. 500G'),
    minFreeSpace: size
      .optional()
      .describe('Free space to leave on the filesystem (config.yml free_disk_size)'),
    fsync: z.boolean().optional().describe('fsync each blob before it becomes visible (survives power loss)'),
    create: z.boolean().optional().describe('Create the lake when missing (default true)'),
    staleTempAfterMs: ms('Temp files untouched this long are swept').optional(),
  })
  .strict()
  .meta({ id: 'Disk', description: 'A lake folder, laid out as Python tarn lays it out' });

/**
 * A URL field that must not carry credentials (`user:password@`, see util/url.ts). The check is a
 * pattern too, so that the JSON Schema (and a CRD built from it) refuses what zod refuses.
 */
function credentialFree<T extends z.ZodString | z.ZodURL>(
  url: T,
  message: string,
  options: { secretParams?: boolean } = {},
) {
  const pattern = options.secretParams
    ? `^(?![\\s\\S]*[?&]password=)${NO_USER_INFO.source.slice(1)}`
    : NO_USER_INFO.source;
  return url
    .refine((u) => !hasUserInfo(u) && !(options.secretParams && hasSecretParam(u)), { message })
    .meta({ pattern });
}

export const redisConfig = z
  .object({
    kind: z.literal('redis'),
    url: credentialFree(
      z.string().min(1),
      'credentials in the URL (user:password@, ?password=) would sit in the config file and show in messages; give username, and password: { env: VAR } or { file: /path }',
      { secretParams: true },
    )
      .optional()
      .describe(
        'redis://host:port/db or rediss:// (TLS); a bare host works too. Default redis://127.0.0.1:6379. No user:password@ (use username and password)',
      ),
    username: z.string().min(1).optional().describe('ACL user name'),
    password: secret.optional().describe('Password (never inline, and not in the URL)'),
    prefix: z.string().optional().describe('Prefix of our keys, so one Redis can hold several stores'),
    ttl: z
      .number()
      .int()
      .positive()
      .optional()
      .describe('Expire values this many seconds after their last read or write'),
    maxValueSize: size.optional().describe('Refuse values larger than this (default 64MiB)'),
    connectTimeoutMs: ms('Connection timeout (default 5000)').optional(),
    commandTimeoutMs: ms('Per-command timeout (default 5000)').optional(),
  })
  .strict()
  .meta({ id: 'Redis', description: 'Values in Redis, named as Python tarn names them' });

export const s3Config = z
  .object({
    kind: z.literal('s3'),
    bucket: z.string().min(1).describe('Bucket name'),
    prefix: z.string().optional().describe('Object key prefix, e.g. lake/'),
    endpoint: credentialFree(
      z.string().min(1),
      'credentials in the endpoint (key:secret@) would show in messages and in tarn describe; give credentials: { accessKeyId: { env: VAR }, secretAccessKey: { file: /path } }, or leave them to the AWS chain',
    )
      .optional()
      .describe('A non-AWS server (MinIO, Ceph, R2, ...); no key:secret@ (use credentials)'),
    region: z.string().min(1).optional().describe('Default: $AWS_REGION, else us-east-1'),
    forcePathStyle: z.boolean().optional().describe('Path-style URLs; default true with an endpoint'),
    credentials: z
      .object({
        accessKeyId: secret,
        secretAccessKey: secret,
        sessionToken: secret.optional(),
      })
      .strict()
      .optional()
      .describe('Explicit credentials; leave out to use the standard AWS chain (env, files, roles)'),
    partSize: size.optional().describe('Values up to this size go up in one PutObject (default 16MiB)'),
    conditionalWrites: z
      .boolean()
      .optional()
      .describe(
        'Writes ask the server not to replace an object (If-None-Match: *), so a small value is one request (default true; a server answering 501 is found out and written HEAD-then-PUT). false: for a server that silently ignores the header',
      ),
    connectTimeoutMs: ms('Connection timeout (default 5000)').optional(),
    requestTimeoutMs: ms('Per-request timeout (default 60000)').optional(),
  })
  .strict()
  .meta({
    id: 'S3',
    description: 'Values as objects of an S3 bucket, laid out as Python tarn lays them out',
  });

const sshFields = {
  host: z.string().min(1).describe('SSH host name or address'),
  root: z.string().min(1).describe('Folder of the lake on the host'),
  port: z.number().int().min(1).max(65535).optional().describe('Default 22'),
  username: z.string().min(1).optional().describe('Default: the local user name'),
  privateKeyPath: localPath()
    .optional()
    .describe('Private key file (OpenSSH format); relative to the config file'),
  privateKey: secret.optional().describe('Private key contents'),
  passphrase: secret.optional().describe('Passphrase of the private key'),
  agent: localPath().optional().describe('ssh-agent socket (default $SSH_AUTH_SOCK when no key)'),
  knownHostsPath: localPath()
    .optional()
    .describe('known_hosts file (default ~/.ssh/known_hosts); relative to the config file'),
  hostKeyFingerprint: z
    .string()
    .regex(/^SHA256:/)
    .optional()
    .describe('Pin the host key instead: SHA256:... as ssh-keygen -l prints it'),
  readyTimeoutMs: ms('Connection (handshake) timeout (default 10000)').optional(),
  connections: z.number().int().positive().optional().describe('Connections kept open (default 2)'),
};

export const sftpConfig = z
  .object({ kind: z.literal('sftp'), ...sshFields })
  .strict()
  .meta({ id: 'SFTP', description: 'A lake on an SSH host, over SFTP' });

export const scpConfig = z
  .object({
    kind: z.literal('scp'),
    ...sshFields,
    transferTimeoutMs: ms(
      'A transfer step that makes no progress this long fails (default 30000)',
    ).optional(),
  })
  .strict()
  .meta({ id: 'SCP', description: 'A lake on an SSH host without SFTP, over the scp protocol' });

export const nginxConfig = z
  .object({
    kind: z.literal('nginx'),
    url: credentialFree(
      z.url(),
      'credentials in the URL (user:password@) would show in messages and in tarn describe; give them as headers: { authorization: { env: VAR } } (a literal @ in the path is %40)',
    ).describe(
      'Base URL of a lake folder served by nginx with autoindex on; no user:password@ (use headers)',
    ),
    headers: z
      .record(z.string(), secret)
      .optional()
      .describe('Extra request headers (e.g. authorization), each from a secret'),
    connectTimeoutMs: ms('Connection timeout (default 5000)').optional(),
    requestTimeoutMs: ms('Per-request timeout (default 30000)').optional(),
    retries: z
      .number()
      .int()
      .nonnegative()
      .optional()
      .describe('Retries after a 5xx or a dropped connection'),
  })
  .strict()
  .meta({ id: 'Nginx', description: 'A read-only lake served over HTTP by nginx' });

export const sidecarConfig = z
  .object({
    kind: z.literal('sidecar'),
    socket: localPath().describe(
      'Unix socket of a tarn sidecar (tarn serve); in a pod, $TARN_SIDECAR names it. Relative to the config file',
    ),
    paths: z
      .boolean()
      .optional()
      .describe(
        'Ask for zero-copy file paths and open them when this process sees the file (a shared volume); default true',
      ),
    ingestFrom: z
      .union([size, z.literal(false)])
      .optional()
      .describe(
        'Files of at least this size are stored by the sidecar reading them from a shared folder (its serve.ingestRoots) instead of over the socket (default 1MiB; false: never)',
      ),
    connections: z.number().int().positive().optional().describe('Connections kept open (default 16)'),
    requestTimeoutMs: ms('Give up on a request that gets no answer this long (default 60000)').optional(),
  })
  .strict()
  .meta({
    id: 'Sidecar',
    description:
      'A storage served by a tarn sidecar over a Unix socket: its whole tree, its memo index and its leases',
  });

export const refConfig = z
  .object({
    // Optional so `{ ref: name }` is enough; the discriminated union routes a kind-less object here.
    kind: z.literal('ref').optional(),
    ref: z.string().min(1).describe('Name of an entry of the top-level locations'),
  })
  .strict()
  .meta({
    id: 'Ref',
    description: 'The location named in the top-level locations; the same name is the same instance',
  });

// The combinators nest nodes, so their types are written out (zod cannot infer a recursive type).
export interface FanoutConfig {
  kind: 'fanout';
  members: LocationNode[];
}
export interface SmallConfig {
  kind: 'small';
  maxSize: number | string;
  location: LocationNode;
}
export interface LevelConfig {
  location: LocationNode;
  write?: boolean | undefined;
  replicate?: boolean | undefined;
  touch?: boolean | undefined;
  name?: string | undefined;
  timeoutMs?: number | undefined;
}
export interface LevelsConfig {
  kind: 'levels';
  levels: Array<LevelConfig | LocationNode>;
  copies?: 'all' | 'first' | undefined;
}

export type DiskConfig = z.infer<typeof diskConfig>;
export type RedisConfig = z.infer<typeof redisConfig>;
export type S3Config = z.infer<typeof s3Config>;
export type SftpConfig = z.infer<typeof sftpConfig>;
export type ScpConfig = z.infer<typeof scpConfig>;
export type NginxConfig = z.infer<typeof nginxConfig>;
export type SidecarConfig = z.infer<typeof sidecarConfig>;
export type RefConfig = z.infer<typeof refConfig>;
export type Secret = z.infer<typeof secret>;

export type LocationConfig =
  | DiskConfig
  | RedisConfig
  | S3Config
  | SftpConfig
  | ScpConfig
  | NginxConfig
  | SidecarConfig
  | FanoutConfig
  | LevelsConfig
  | SmallConfig
  | RefConfig;

/** A folder path (disk lake), a list (fanout), or a location object. */
export type LocationNode = string | LocationNode[] | LocationConfig;

const node = z.lazy((): z.ZodType<LocationNode> => locationNode);

export const fanoutConfig = z
  .object({
    kind: z.literal('fanout'),
    members: z
      .array(node)
      .min(1)
      .describe('Locations used one after the other: writes go to the first that accepts'),
  })
  .strict()
  .meta({ id: 'Fanout', description: 'Several locations as one; a plain list is the short form' });

export const smallConfig = z
  .object({
    kind: z.literal('small'),
    maxSize: size.describe('Largest value let through, in bytes or with a unit (100K, 10MiB)'),
    location: node.describe('The location that gets the small values'),
  })
  .strict()
  .meta({ id: 'Small', description: 'Lets only small values into a location (e.g. Redis above a disk)' });

export const levelConfig = z
  .object({
    location: node,
    write: z.boolean().optional().describe('Writes may go here (default true)'),
    replicate: z.boolean().optional().describe('A hit in a lower level is copied here (default true)'),
    touch: z.boolean().optional().describe('Record uses of keys served from above (default false)'),
    name: z.string().min(1).optional().describe('For messages, tarn describe and fault counters'),
    timeoutMs: ms('Give up on lookups in this level after this long and go to the next').optional(),
  })
  .strict()
  .meta({ id: 'Level', description: 'A level with options; a bare location is a level with the defaults' });

export const levelsConfig = z
  .object({
    kind: z.literal('levels'),
    levels: z
      .array(z.union([levelConfig, node]))
      .min(1)
      .describe('Levels from the top (fastest) down'),
    copies: z
      .enum(['all', 'first'])
      .optional()
      .describe(
        'Copy-on-read into every replicate level above a hit (all, default) or only the top-most that accepts (first, as Python tarn)',
      ),
  })
  .strict()
  .meta({ id: 'Levels', description: 'A cache hierarchy with copy-on-read' });

const KINDS = [
  diskConfig,
  redisConfig,
  s3Config,
  sftpConfig,
  scpConfig,
  nginxConfig,
  sidecarConfig,
  fanoutConfig,
  levelsConfig,
  smallConfig,
  refConfig,
] as const;
const KIND_NAMES = KINDS.map((k) => {
  const kind = k.shape.kind;
  return kind instanceof z.ZodOptional ? kind.unwrap().value : kind.value;
});

const locationObject = z.discriminatedUnion('kind', [...KINDS], {
  error: (issue) =>
    issue.code === 'invalid_union'
      ? `unknown kind ${JSON.stringify((issue.input as { kind?: unknown })?.kind)}; one of ${KIND_NAMES.join(', ')} (or { ref: name })`
      : undefined,
});

export const locationNode: z.ZodType<LocationNode> = z
  .union(
    [
      localPath().describe('Short form: a disk lake at this folder'),
      z
        .array(node)
        .min(1)
        .meta({ id: 'LocationList', description: 'Short form: a fanout of these locations' }),
      locationObject,
    ],
    { error: 'a location is a folder path, a list of locations, or an object with kind (or ref)' },
  )
  .meta({
    id: 'Location',
    description: 'A location: a folder path, a list (fanout), an object with kind, or { ref: name }',
  });

/** How `tarn serve` serves the storage (the sidecar). Flags of `tarn serve` override these. */
export const serveConfig = z
  .object({
    socket: localPath()
      .optional()
      .describe('The Unix socket to listen on (default ./.tarn/tarn.sock); relative to the config file'),
    socketMode: z
      .string()
      .regex(/^0?[0-7]{3}$/, 'an octal mode such as 0660')
      .optional()
      .describe('Permissions of the socket (default 0660: its owner and group may connect, nobody else)'),
    socketGroup: z
      .union([z.number().int().nonnegative(), z.string().min(1)])
      .optional()
      .describe('Group (name or gid) given the socket, so that app containers running as it can connect'),
    allowDelete: z.boolean().optional().describe('Let clients DELETE values (default false: 403)'),
    ingestRoots: z
      .array(localPath())
      .max(64)
      .optional()
      .describe(
        'Folders shared with the app containers (same path on both sides) whose files POST /v1/blobs/ingest may store by reading them here; relative to the config file (default none: ingest is off)',
      ),
    bodyLimit: size
      .optional()
      .describe('Largest PUT body (default 100G); larger ones get 413, nothing stored'),
    maxUploads: z
      .number()
      .int()
      .positive()
      .optional()
      .describe('Uploads in progress at once (default 64); more get 503 with Retry-After'),
    requestTimeoutMs: ms('A request must be received in full within this (default 3600000)').optional(),
    idleTimeoutMs: ms('A connection that moves no byte this long is closed (default 30000)').optional(),
    headersTimeoutMs: ms('Request headers must arrive within this (default 10000)').optional(),
    drainTimeoutMs: ms(
      'On SIGTERM, requests in flight get this long to finish before they are cut (default 25000)',
    ).optional(),
    hotCache: z
      .object({
        size: size
          .optional()
          .describe('Memory for recently used small values, verified when kept (default 32MiB; 0: no cache)'),
        valueLimit: size.optional().describe('Largest value kept there (default 64KiB, at most 1MiB)'),
        maxAgeMs: ms(
          'A kept value is read from the tree again after this, so a delete by another process shows within it (default 60000)',
        ).optional(),
      })
      .strict()
      .optional()
      .describe('GETs of hot small values answered from memory, without a syscall'),
    metrics: z
      .object({
        port: z.number().int().min(0).max(65535).describe('TCP port of GET /metrics (Prometheus)'),
        host: z.string().min(1).optional().describe('Address to bind (default 0.0.0.0)'),
      })
      .strict()
      .optional()
      .describe('Prometheus metrics on a TCP port; off by default'),
  })
  .strict()
  .meta({ id: 'Serve', description: 'How tarn serve (the sidecar) serves this storage' });

export type ServeConfig = z.infer<typeof serveConfig>;

export const storageConfig = z
  .object({
    algorithm: z.string().min(1).optional().describe('Digest of keys (default sha256)'),
    location: locationNode.describe('The location tree'),
    locations: z
      .record(z.string().min(1), locationNode)
      .optional()
      .describe('Named locations, used with { ref: name } anywhere in the tree'),
    memo: z
      .object({
        index: locationNode.describe(
          'Where smartCache maps call keys to value keys (e.g. a Redis shared by pods)',
        ),
      })
      .strict()
      .optional()
      .describe(
        'Memoisation (smartCache) with this storage; a disk lake keeps its index in tools/memo by default',
      ),
    serve: serveConfig.optional().describe('How tarn serve (the sidecar) serves this storage'),
  })
  .strict()
  .meta({
    id: 'TarnConfig',
    title: 'tarn storage config',
    description: 'A tarn storage: the digest and a tree of locations',
  });

export type StorageConfig = z.infer<typeof storageConfig>;

/** The JSON Schema (draft 2020-12) of a config file; the build writes it to dist/tarn-config.schema.json. */
export function configJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(storageConfig, { target: 'draft-2020-12', io: 'input' }) as {
    $defs?: Record<string, Record<string, unknown>>;
  };
  // z.lazy leaves defs that only point at another def; point their users at the target instead.
  const defs = schema.$defs ?? {};
  const alias = new Map<string, string>();
  for (const [name, def] of Object.entries(defs)) {
    const keys = Object.keys(def);
    if (keys.length === 1 && typeof def.$ref === 'string') alias.set(`#/$defs/${name}`, def.$ref);
  }
  for (const name of alias.keys()) delete defs[name.slice('#/$defs/'.length)];
  const text = JSON.stringify(schema).replace(/"\$ref":"([^"]+)"/g, (m, ref: string) => {
    let target = ref;
    while (alias.has(target)) target = alias.get(target) as string;
    return target === ref ? m : `"$ref":${JSON.stringify(target)}`;
  });
  return JSON.parse(text) as Record<string, unknown>;
}
