import { existsSync, lstatSync, readdirSync, readFileSync, rmdirSync, unlinkSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { ConfigError } from '../errors.js';
import { Fanout } from '../location/combinators/fanout.js';
import { Level, Levels } from '../location/combinators/levels.js';
import { Small } from '../location/combinators/small.js';
import type { Location } from '../location/contract.js';
import { DiskLocation } from '../location/disk/index.js';
import { NginxLocation } from '../location/nginx/index.js';
import { RedisLocation } from '../location/redis/index.js';
import { S3Location } from '../location/s3/index.js';
import { SidecarLocation } from '../location/sidecar/index.js';
import type { SshOptions } from '../location/ssh/options.js';
import { SCPLocation } from '../location/ssh/scp.js';
import { SFTPLocation } from '../location/ssh/sftp.js';
import { HashKeyStorage } from '../storage.js';
import { parseSize } from '../util/size.js';
import { parseYaml } from '../util/yaml.js';
import { configErrorFrom } from '../util/zod.js';
import {
  type DiskConfig,
  type LevelConfig,
  type LocationConfig,
  type LocationNode,
  type NginxConfig,
  type RedisConfig,
  type S3Config,
  type ScpConfig,
  type Secret,
  type SftpConfig,
  type SidecarConfig,
  type StorageConfig,
  storageConfig,
} from './schema.js';

type Path = ReadonlyArray<string | number>;
type LeafConfig = DiskConfig | RedisConfig | S3Config | SftpConfig | ScpConfig | NginxConfig | SidecarConfig;

/**
 * How deep a config may nest, in JSON levels. Each combinator adds two or three, so this allows
 * trees far deeper than any real one, and stays far below what exhausts the stack of the
 * (recursive) validation and building.
 */
const MAX_DEPTH = 100;

/** Validates a parsed config; the ConfigError names the path of the first bad field. */
export function parseConfig(raw: unknown, where = 'config'): StorageConfig {
  checkShape(raw, where);
  // reportInput lets configErrorFrom tell which branch of a union the input was meant for.
  const parsed = storageConfig.safeParse(raw, { reportInput: true });
  if (!parsed.success) throw configErrorFrom(parsed.error, where);
  return parsed.data;
}

/**
 * Refuses what the recursive validation cannot take: nesting deeper than MAX_DEPTH (which would
 * overflow the stack) and values that contain themselves (YAML aliases can make them), walking
 * iteratively so that the check itself cannot overflow.
 */
function checkShape(raw: unknown, where: string): void {
  const open = new Set<object>();
  const stack: Array<{ value: unknown; path: Path; leave?: boolean }> = [{ value: raw, path: [] }];
  for (let frame = stack.pop(); frame; frame = stack.pop()) {
    const { value, path } = frame;
    if (value === null || typeof value !== 'object') continue;
    if (frame.leave) {
      open.delete(value);
      continue;
    }
    if (open.has(value))
      throw new ConfigError(`a value that contains itself (a cycle of YAML aliases?) in ${where}`, path);
    if (path.length >= MAX_DEPTH)
      throw new ConfigError(`nested deeper than ${MAX_DEPTH} levels in ${where}`, path);
    open.add(value);
    stack.push({ value, path, leave: true });
    const entries: Array<[string | number, unknown]> = Array.isArray(value)
      ? value.map((v, i) => [i, v])
      : Object.entries(value);
    // Reversed, so that the first problem in document order is the one reported.
    for (let i = entries.length - 1; i >= 0; i--) {
      const [k, v] = entries[i] as [string | number, unknown];
      if (v !== null && typeof v === 'object') stack.push({ value: v, path: [...path, k] });
    }
  }
}

/** Reads a YAML or JSON config file. */
export async function loadConfigFile(file: string): Promise<StorageConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new ConfigError(`cannot read ${file}: ${(e as Error).message}`);
  }
  return parseConfigText(text, file);
}

/** Parses and validates the text of a YAML or JSON config; `where` names it in errors. */
export function parseConfigText(text: string, where = 'config'): StorageConfig {
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (e) {
    throw new ConfigError(`${where} is not valid YAML or JSON: ${(e as Error).message}`);
  }
  return parseConfig(raw, where);
}

export interface BuildOptions {
  /** Folder that relative paths in the config (disk roots, secret files, SSH key files) are relative to. */
  base?: string;
  /** Override `create` for disk lakes (`tarn describe` never creates one). */
  create?: boolean;
  /** The storage's digest, recorded by the disk lakes the build creates (the config's `algorithm`). */
  algorithm?: string;
  /** Named locations that `{ ref: name }` nodes point to (the config's top-level `locations`). */
  locations?: Readonly<Record<string, LocationNode>>;
  /** Where `{ env: VAR }` secrets are looked up (default process.env). */
  env?: Readonly<Record<string, string | undefined>>;
  /**
   * Called when a leaf location cannot be built (e.g. a missing lake with create: false); its
   * result stands in for the leaf. Without it the error is thrown. `tarn describe` uses this to
   * report every broken leaf instead of stopping at the first.
   */
  onLeafError?: (error: unknown, config: LocationConfig, path: Path) => Location;
}

/**
 * Builds the location tree of a config node. Nothing connects here: remote locations connect on
 * their first operation. Named locations are built once, so a `ref` used twice is one instance.
 * Errors (unknown or cyclic refs, missing secrets) are ConfigErrors naming the path of the field.
 */
export function buildLocation(
  config: LocationNode,
  options: BuildOptions = {},
  path: Path = ['location'],
): Location {
  const builder = new Builder(options);
  return builder.atomically(() => builder.build(config, path));
}

/** How deep locations may nest while building, refs followed; see MAX_DEPTH. */
const MAX_BUILD_DEPTH = 100;

class Builder {
  readonly #named = new Map<string, Location>();
  readonly #building = new Set<string>();
  readonly #base: string;
  /** How to take back what each disk leaf created, in the order they were built. */
  readonly #undo: Array<() => void> = [];
  #depth = 0;

  constructor(readonly options: BuildOptions) {
    this.#base = options.base ?? '.';
  }

  /**
   * Runs a build; when it throws, the lake folders its disk leaves created are removed again, so a
   * config that does not build (a missing secret, a bad node after a disk node, lakes that disagree)
   * leaves nothing on disk. Disk leaves create their folders while the tree is built, and the
   * alternative (validate every node first, create the lakes afterwards) would need a second,
   * creating pass through DiskLocation's own checks, which only it knows.
   */
  atomically<T>(build: () => T): T {
    try {
      return build();
    } catch (e) {
      for (const undo of this.#undo.reverse()) undo();
      this.#undo.length = 0;
      throw e;
    }
  }

  build(node: LocationNode, path: Path): Location {
    // A chain of refs nests without nesting in the config; a caller's node may be a cycle.
    if (this.#depth >= MAX_BUILD_DEPTH)
      throw new ConfigError(`locations nested deeper than ${MAX_BUILD_DEPTH} levels (refs followed)`, path);
    this.#depth++;
    try {
      return this.#build(node, path);
    } finally {
      this.#depth--;
    }
  }

  #build(node: LocationNode, path: Path): Location {
    // The short forms of the original tarn: a path is a disk lake, a list is a fanout.
    if (typeof node === 'string') return this.build({ kind: 'disk', root: node }, path);
    if (Array.isArray(node)) return new Fanout(...node.map((m, i) => this.build(m, [...path, i])));
    const c = node;
    switch (c.kind) {
      case undefined:
      case 'ref':
        return this.#ref(c.ref, path);
      case 'fanout':
        return new Fanout(...c.members.map((m, i) => this.build(m, [...path, 'members', i])));
      case 'small':
        return new Small(this.build(c.location, [...path, 'location']), {
          maxSize: parseSize(c.maxSize, [...path, 'maxSize']),
        });
      case 'levels':
        return new Levels(
          ...c.levels.map((l, i) => this.#level(l, [...path, 'levels', i])),
          c.copies === undefined ? {} : { copies: c.copies },
        );
      default:
        return this.#leaf(c, path);
    }
  }

  #level(entry: LevelConfig | LocationNode, path: Path): Level {
    // A level object is the only kind-less object with a location (a ref has neither).
    if (typeof entry === 'string' || Array.isArray(entry) || 'kind' in entry || !('location' in entry))
      return new Level(this.build(entry, path));
    const { location, ...flags } = entry;
    return new Level(this.build(location, [...path, 'location']), flags);
  }

  #ref(name: string, path: Path): Location {
    const built = this.#named.get(name);
    if (built) return built;
    // Own entries only: `{ ref: constructor }` must not find Object.prototype.constructor.
    const locations = this.options.locations;
    const target = locations && Object.hasOwn(locations, name) ? locations[name] : undefined;
    if (target === undefined) {
      const known = Object.keys(this.options.locations ?? {});
      throw new ConfigError(
        `no location named ${JSON.stringify(name)} in locations${known.length ? ` (there are ${known.join(', ')})` : ''}`,
        [...path, 'ref'],
      );
    }
    if (this.#building.has(name))
      throw new ConfigError(`location ${JSON.stringify(name)} refers to itself (a cycle of refs)`, [
        ...path,
        'ref',
      ]);
    this.#building.add(name);
    try {
      const location = this.build(target, ['locations', name]);
      this.#named.set(name, location);
      return location;
    } finally {
      this.#building.delete(name);
    }
  }

  #leaf(c: LeafConfig, path: Path) {
    try {
      return this.#buildLeaf(c, path);
    } catch (e) {
      if (e instanceof SecretError) throw e;
      if (this.options.onLeafError) return this.options.onLeafError(e, c, path);
      // A location's own ConfigError names a field of its options: prefix it with where the node is.
      if (e instanceof ConfigError) throw new ConfigError(e.detail, [...path, ...e.path], { cause: e });
      throw e;
    }
  }

  #buildLeaf(c: LeafConfig, path: Path): Location {
    switch (c.kind) {
      case 'disk': {
        const root = resolve(this.#base, c.root);
        const create = this.options.create ?? c.create ?? true;
        if (create) {
          const undo = undoCreation(root);
          if (undo) this.#undo.push(undo);
        }
        return new DiskLocation(root, {
          levels: c.levels,
          maxSize: c.maxSize,
          minFreeSpace: c.minFreeSpace,
          fsync: c.fsync,
          create,
          staleTempAfterMs: c.staleTempAfterMs,
          algorithm: this.options.algorithm,
        });
      }
      case 'redis': {
        const password = c.password && this.#secret(c.password, [...path, 'password']);
        return new RedisLocation({
          url: c.url,
          prefix: c.prefix,
          ttl: c.ttl,
          maxValueSize: c.maxValueSize === undefined ? undefined : parseSize(c.maxValueSize),
          connectTimeoutMs: c.connectTimeoutMs,
          commandTimeoutMs: c.commandTimeoutMs,
          // ioredis takes these when the URL has none; keeping them out of the URL keeps them out of messages.
          client: password || c.username ? { password, username: c.username } : undefined,
        });
      }
      case 's3': {
        const cred = c.credentials;
        const at = [...path, 'credentials'];
        return new S3Location({
          bucket: c.bucket,
          prefix: c.prefix,
          endpoint: c.endpoint,
          region: c.region,
          forcePathStyle: c.forcePathStyle,
          credentials: cred && {
            accessKeyId: this.#secret(cred.accessKeyId, [...at, 'accessKeyId']),
            secretAccessKey: this.#secret(cred.secretAccessKey, [...at, 'secretAccessKey']),
            sessionToken: cred.sessionToken && this.#secret(cred.sessionToken, [...at, 'sessionToken']),
          },
          partSize: c.partSize === undefined ? undefined : parseSize(c.partSize),
          conditionalWrites: c.conditionalWrites,
          connectTimeoutMs: c.connectTimeoutMs,
          requestTimeoutMs: c.requestTimeoutMs,
        });
      }
      case 'sftp':
        return new SFTPLocation(c.host, c.root, this.#ssh(c, path));
      case 'scp':
        return new SCPLocation(c.host, c.root, {
          ...this.#ssh(c, path),
          transferTimeoutMs: c.transferTimeoutMs,
        });
      case 'sidecar':
        return new SidecarLocation(resolve(this.#base, c.socket), {
          paths: c.paths,
          ingestFrom:
            c.ingestFrom === undefined || c.ingestFrom === false
              ? c.ingestFrom
              : parseSize(c.ingestFrom, [...path, 'ingestFrom']),
          connections: c.connections,
          requestTimeoutMs: c.requestTimeoutMs,
        });
      case 'nginx': {
        const headers = c.headers
          ? Object.fromEntries(
              Object.entries(c.headers).map(([k, v]) => [k, this.#secret(v, [...path, 'headers', k])]),
            )
          : undefined;
        return new NginxLocation({
          url: c.url,
          headers,
          connectTimeoutMs: c.connectTimeoutMs,
          requestTimeoutMs: c.requestTimeoutMs,
          retries: c.retries,
        });
      }
    }
  }

  #ssh(c: Omit<SftpConfig, 'kind'>, path: Path): SshOptions {
    return {
      port: c.port,
      username: c.username,
      privateKeyPath: c.privateKeyPath && resolve(this.#base, c.privateKeyPath),
      privateKey: c.privateKey && this.#secret(c.privateKey, [...path, 'privateKey']),
      passphrase: c.passphrase && this.#secret(c.passphrase, [...path, 'passphrase']),
      agent: c.agent,
      knownHostsPath: c.knownHostsPath && resolve(this.#base, c.knownHostsPath),
      hostKeyFingerprint: c.hostKeyFingerprint,
      readyTimeoutMs: c.readyTimeoutMs,
      connections: c.connections,
    };
  }

  /** Reads a secret now, so a missing one fails at startup, naming the field, not at the first request. */
  #secret(s: Secret, path: Path): string {
    if ('env' in s) {
      const value = (this.options.env ?? process.env)[s.env];
      if (value === undefined || value === '')
        throw new SecretError(`the environment variable ${s.env} is not set`, [...path, 'env']);
      return value;
    }
    const file = resolve(this.#base, s.file);
    try {
      return readFileSync(file, 'utf8').replace(/\r?\n$/, '');
    } catch (e) {
      throw new SecretError(`cannot read the secret file ${file}: ${(e as Error).message}`, [
        ...path,
        'file',
      ]);
    }
  }
}

/**
 * Notes what a new lake at `root` would add, and returns how to remove exactly that: the folders
 * that do not exist yet on the way down to `root` (a lake's folder may be deep in new folders), or,
 * in a folder that exists but is no lake yet, the entries it does not have yet. Only folders and the
 * lake's own config.yml are removed, and a folder only when empty: a file someone else put there
 * meanwhile keeps its folders. Undefined for an existing lake, where building creates nothing.
 */
function undoCreation(root: string): (() => void) | undefined {
  let top: string | undefined;
  for (let p = root; !existsSync(p); p = dirname(p)) {
    top = p;
    if (dirname(p) === p) break;
  }
  if (top) {
    const first = top;
    return () => prune(first, root);
  }
  if (existsSync(join(root, 'config.yml'))) return undefined;
  let before: Set<string>;
  try {
    before = new Set(readdirSync(root));
  } catch {
    return undefined; // not a folder: DiskLocation refuses it and creates nothing
  }
  return () => {
    for (const name of readdirSync(root)) if (!before.has(name)) prune(join(root, name), root);
  };
}

/** Removes `path` if it is the lake's config.yml, or a folder that holds nothing else once pruned. */
function prune(path: string, root: string): void {
  let st: ReturnType<typeof lstatSync>;
  try {
    st = lstatSync(path);
  } catch {
    return;
  }
  if (st.isDirectory()) {
    for (const name of readdirSync(path)) prune(join(path, name), root);
    try {
      rmdirSync(path);
    } catch {
      // not empty: it holds something we did not create
    }
  } else if (path === join(root, 'config.yml')) {
    unlinkSync(path);
  }
}

/** A missing secret is a config error even for `tarn describe`: it is no reachability problem. */
class SecretError extends ConfigError {}

/** Builds the storage a config describes (synchronously: secrets files are small and read once). */
export function fromConfig(config: StorageConfig, options: BuildOptions = {}): HashKeyStorage {
  return openConfig(config, options).storage;
}

/**
 * The storage a config describes and, when it names one, the memo index (smartCache), built by one
 * builder: a `ref` used by both is one instance. A config whose root is a sidecar and that names
 * no index gets the sidecar's (`/v1/memo`).
 */
export function openConfig(
  config: StorageConfig,
  options: BuildOptions = {},
): { storage: HashKeyStorage; memoIndex: Location | undefined } {
  const builder = new Builder({ locations: config.locations, algorithm: config.algorithm, ...options });
  return builder.atomically(() => {
    const storage = new HashKeyStorage(builder.build(config.location, ['location']), {
      algorithm: config.algorithm,
    });
    // A sidecar serves its own memo index: a config that is only `{ kind: sidecar }` needs no other.
    const root = storage.location;
    const memoIndex = config.memo
      ? builder.build(config.memo.index, ['memo', 'index'])
      : root instanceof SidecarLocation
        ? root.memoIndex()
        : undefined;
    return { storage, memoIndex };
  });
}

export async function fromConfigFile(file: string, options: BuildOptions = {}): Promise<HashKeyStorage> {
  return fromConfig(await loadConfigFile(file), { base: dirname(resolve(file)), ...options });
}
