import fc from 'fast-check';

/**
 * Generators of storage configs for the property-based tests of the config schema and builder:
 * valid trees of every kind, nested and with refs, whose every leaf is built without connecting
 * (disk lakes under a temp folder given as `base`, servers on an unused loopback port).
 */

/** Secrets the generated configs may name; `env` and `files` say which of them exist. */
export const SECRET_ENV = { TARN_FUZZ_SECRET: 's3cret' } as const;
export const SECRET_FILE = 'secret.txt';

const secret = fc.constantFrom(
  { env: 'TARN_FUZZ_SECRET' },
  { env: 'TARN_FUZZ_UNSET' },
  { file: SECRET_FILE },
  { file: 'missing-secret.txt' },
);

/** A safe folder name below the temp base: a few lakes, so that trees share some of them. */
export const lakeRoot = fc.constantFrom('a', 'b', 'c', 'd/e', 'f-1', 'g_2');

const size = fc.oneof(
  fc.nat({ max: 10_000_000 }),
  fc.constantFrom('0', '1K', '10MiB', '1.5G', ' 2 KiB ', '500G', '1PB'),
);
const ms = fc.integer({ min: 1, max: 600_000 });
const LOOPBACK = 'http://127.0.0.1:9';

/** `{ a: x, b: undefined }` -> `{ a: x }`: configs come from JSON and YAML, which have no undefined. */
function defined<T extends Record<string, unknown>>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

const opt = <T>(arb: fc.Arbitrary<T>) => fc.option(arb, { nil: undefined, freq: 2 });

const disk = fc
  .record({
    root: lakeRoot,
    levels: opt(fc.constantFrom([1, -1], [2, -1], [1, 1, -1], [1, 31])),
    maxSize: opt(size),
    minFreeSpace: opt(fc.constantFrom(0, '1K')),
    fsync: opt(fc.boolean()),
    create: opt(fc.boolean()),
    staleTempAfterMs: opt(ms),
  })
  .map((r) => defined({ kind: 'disk', ...r }));

const redis = fc
  .record({
    url: opt(
      fc.constantFrom('redis://127.0.0.1:9', '127.0.0.1:9', 'rediss://127.0.0.1:9/2', '/tmp/no-redis.sock'),
    ),
    username: opt(fc.constantFrom('default', 'tarn')),
    password: opt(secret),
    prefix: opt(fc.string({ maxLength: 5 })),
    ttl: opt(fc.integer({ min: 1, max: 1_000_000 })),
    maxValueSize: opt(size),
    connectTimeoutMs: opt(ms),
    commandTimeoutMs: opt(ms),
  })
  .map((r) => defined({ kind: 'redis', ...r }));

const s3 = fc
  .record({
    bucket: fc.constantFrom('lake', 'b-1'),
    prefix: opt(fc.constantFrom('', 'lake/', 'a/b/')),
    endpoint: opt(fc.constant(LOOPBACK)),
    region: opt(fc.constantFrom('us-east-1', 'eu-west-3')),
    forcePathStyle: opt(fc.boolean()),
    credentials: opt(
      fc
        .record({ accessKeyId: secret, secretAccessKey: secret, sessionToken: opt(secret) })
        .map((c) => defined(c)),
    ),
    partSize: opt(size),
    connectTimeoutMs: opt(ms),
    requestTimeoutMs: opt(ms),
  })
  .map((r) => defined({ kind: 's3', ...r }));

const sshFields = {
  host: fc.constantFrom('127.0.0.1', 'localhost'),
  root: fc.constantFrom('/lake', 'lake', '/'),
  port: opt(fc.integer({ min: 1, max: 65535 })),
  username: opt(fc.constantFrom('tarn', 'root')),
  privateKeyPath: opt(fc.constantFrom('id_ed25519', '/nonexistent/key')),
  privateKey: opt(secret),
  passphrase: opt(secret),
  agent: opt(fc.constant('/tmp/no-agent.sock')),
  knownHostsPath: opt(fc.constantFrom('known_hosts', '/nonexistent/known_hosts')),
  hostKeyFingerprint: opt(fc.constant('SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA')),
  readyTimeoutMs: opt(ms),
  connections: opt(fc.integer({ min: 1, max: 8 })),
};
const sftp = fc.record(sshFields).map((r) => defined({ kind: 'sftp', ...r }));
const scp = fc
  .record({ ...sshFields, transferTimeoutMs: opt(ms) })
  .map((r) => defined({ kind: 'scp', ...r }));

const nginx = fc
  .record({
    url: fc.constantFrom(`${LOOPBACK}/lake/`, `${LOOPBACK}/lake`, 'http://[::1]:9/', 'https://localhost:9/x'),
    headers: opt(fc.dictionary(fc.constantFrom('authorization', 'x-token'), secret, { maxKeys: 2 })),
    connectTimeoutMs: opt(ms),
    requestTimeoutMs: opt(ms),
    retries: opt(fc.nat(5)),
  })
  .map((r) => defined({ kind: 'nginx', ...r }));

/** Names of the top-level `locations`; refs name them (or one that is missing). */
export const refName = fc.constantFrom('n1', 'n2', 'n3', 'missing');

const ref = fc.oneof(
  refName.map((name) => ({ ref: name })),
  refName.map((name) => ({ kind: 'ref', ref: name })),
);

/** A location node: short forms, every kind, combinators nested to a small depth, refs. */
export function locationNode(options: { refs?: boolean } = {}): fc.Arbitrary<unknown> {
  const refs = options.refs ?? true;
  const { node } = fc.letrec((tie) => ({
    node: fc.oneof(
      { depthSize: 'small', withCrossShrink: true },
      { arbitrary: lakeRoot, weight: 3 },
      { arbitrary: disk, weight: 3 },
      { arbitrary: fc.oneof(redis, s3, sftp, scp, nginx), weight: 2 },
      { arbitrary: refs ? ref : lakeRoot, weight: refs ? 2 : 0 },
      { arbitrary: fc.array(tie('node'), { minLength: 1, maxLength: 3 }), weight: 1 },
      {
        arbitrary: fc
          .array(tie('node'), { minLength: 1, maxLength: 3 })
          .map((members) => ({ kind: 'fanout', members })),
        weight: 1,
      },
      {
        arbitrary: fc.record({ maxSize: size, location: tie('node') }).map((r) => ({ kind: 'small', ...r })),
        weight: 1,
      },
      {
        arbitrary: fc
          .record({
            levels: fc.array(fc.oneof(tie('node'), tie('level')), { minLength: 1, maxLength: 3 }),
            copies: opt(fc.constantFrom('all', 'first')),
          })
          .map((r) => defined({ kind: 'levels', ...r })),
        weight: 1,
      },
    ),
    level: fc
      .record({
        location: tie('node'),
        write: opt(fc.boolean()),
        replicate: opt(fc.boolean()),
        touch: opt(fc.boolean()),
        name: opt(fc.constantFrom('top', 'disk', 'ünï')),
        timeoutMs: opt(ms),
      })
      .map((r) => defined(r)),
  }));
  return node;
}

/** A whole config: algorithm, location, named locations (which may refer to each other), memo index. */
export function storageConfig(options: { refs?: boolean } = {}): fc.Arbitrary<Record<string, unknown>> {
  const refs = options.refs ?? true;
  return fc
    .record({
      algorithm: opt(fc.constantFrom('sha256', 'sha512', 'blake2b512')),
      location: locationNode(options),
      locations: refs
        ? opt(fc.dictionary(fc.constantFrom('n1', 'n2', 'n3'), locationNode(options), { maxKeys: 3 }))
        : fc.constant(undefined),
      memo: opt(locationNode(options).map((index) => ({ index }))),
    })
    .map((r) => defined(r));
}

/** Where a path leads in a JSON-like value (undefined when it leads nowhere). */
export function at(value: unknown, path: ReadonlyArray<string | number>): unknown {
  let v = value;
  for (const p of path) {
    if (v === null || typeof v !== 'object' || !Object.hasOwn(v, p)) return undefined;
    v = (v as Record<string | number, unknown>)[p];
  }
  return v;
}

/**
 * Replaces the value at one of the value's paths (picked by `pick`) with `replacement(old)`.
 * Returns a copy; the input is left as it is.
 */
export function mutateAt(
  value: unknown,
  pick: number,
  replacement: (old: unknown, key: string | number | undefined) => unknown,
): { mutated: unknown; path: Array<string | number> } {
  const paths: Array<Array<string | number>> = [];
  const walk = (v: unknown, path: Array<string | number>) => {
    paths.push(path);
    if (Array.isArray(v)) for (const [i, x] of v.entries()) walk(x, [...path, i]);
    else if (v !== null && typeof v === 'object')
      for (const [k, x] of Object.entries(v)) walk(x, [...path, k]);
  };
  walk(value, []);
  const path = paths[pick % paths.length] as Array<string | number>;
  const copy = structuredClone(value);
  if (path.length === 0) return { mutated: replacement(copy, undefined), path };
  const parent = at(copy, path.slice(0, -1)) as Record<string | number, unknown>;
  const key = path.at(-1) as string | number;
  parent[key] = replacement(parent[key], key);
  return { mutated: copy, path };
}
