import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { type AddressInfo, createServer as createNetServer } from 'node:net';
import { join } from 'node:path';
import {
  buildLocation,
  ConfigError,
  DiskLocation,
  Fanout,
  fromConfig,
  fromConfigFile,
  HashKeyStorage,
  Levels,
  type Location,
  type LocationNode,
  NginxLocation,
  parseConfig,
  RedisLocation,
  S3Location,
  SCPLocation,
  SFTPLocation,
  Small,
  smartCache,
} from '@tarnjs/tarn';
import { describe, expect, it } from 'vitest';
import { sha256 } from '../../helpers/data.js';
import { tarn } from '../../helpers/spawn.js';
import { freshPath, tempDir } from '../../helpers/tmp.js';

const base = tempDir();

/** The ConfigError of building a config (fails the test when it builds). */
function buildError(raw: unknown, env: Record<string, string> = {}): ConfigError {
  const config = parseConfig(raw);
  try {
    buildLocation(config.location, { base, locations: config.locations, env });
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return e as ConfigError;
  }
  throw new Error(`built: ${JSON.stringify(raw)}`);
}

/** A TCP listener that counts and drops every connection. */
async function countingListener() {
  let count = 0;
  const server = createNetServer((socket) => {
    count++;
    socket.destroy();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    connections: () => count,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

const build = (location: LocationNode, locations?: Record<string, LocationNode>) =>
  buildLocation(parseConfig({ location, locations }).location, { base, locations });

describe('buildLocation', () => {
  it('builds every kind without connecting to anything', async () => {
    // Every remote points at one listener that counts the connections it is offered.
    const listener = await countingListener();
    const port = listener.port;
    const env = { PW: 'pw', KEY: 'k', SECRET: 's' };
    const config = parseConfig({
      location: {
        kind: 'levels',
        levels: [
          {
            kind: 'small',
            maxSize: '10MiB',
            location: { kind: 'redis', url: `redis://127.0.0.1:${port}`, password: { env: 'PW' } },
          },
          { location: 'lake', write: false, replicate: false, touch: true, name: 'ssd', timeoutMs: 100 },
          ['hdd1', 'hdd2'],
          {
            kind: 's3',
            bucket: 'b',
            endpoint: `http://127.0.0.1:${port}`,
            credentials: { accessKeyId: { env: 'KEY' }, secretAccessKey: { env: 'SECRET' } },
          },
          { kind: 'sftp', host: '127.0.0.1', port, root: '/lake' },
          { kind: 'scp', host: '127.0.0.1', port, root: '/lake', transferTimeoutMs: 100 },
          { kind: 'nginx', url: `http://127.0.0.1:${port}/lake/` },
        ],
      },
    });
    const root = buildLocation(config.location, { base, env });
    expect(root).toBeInstanceOf(Levels);
    const levels = (root as Levels).levels;
    const [small, ssd, fanout, s3, sftp, scp, nginx] = levels.map((l) => l.location);
    expect(small).toBeInstanceOf(Small);
    expect((small as Small).options.maxSize).toBe(10 * 2 ** 20);
    expect((small as Small).inner).toBeInstanceOf(RedisLocation);
    expect(ssd).toBeInstanceOf(DiskLocation);
    expect((ssd as DiskLocation).root).toBe(join(base, 'lake'));
    expect(levels[1]).toMatchObject({
      write: false,
      replicate: false,
      touch: true,
      name: 'ssd',
      timeoutMs: 100,
    });
    expect(levels[0]).toMatchObject({ write: true, replicate: true, touch: false });
    expect(fanout).toBeInstanceOf(Fanout);
    expect((fanout as Fanout).members.map((m) => (m as DiskLocation).root)).toEqual([
      join(base, 'hdd1'),
      join(base, 'hdd2'),
    ]);
    expect(s3).toBeInstanceOf(S3Location);
    expect(sftp).toBeInstanceOf(SFTPLocation);
    expect(sftp?.target).toBe(`127.0.0.1:${port}:/lake`);
    expect(scp).toBeInstanceOf(SCPLocation);
    expect(nginx).toBeInstanceOf(NginxLocation);
    // Clients that connect on construction (ioredis does, unless told not to) dial on a later tick.
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setTimeout(r, 50));
    expect(listener.connections()).toBe(0);
    // The count is real: the first operation of a remote does reach the listener.
    await (small as Small).inner.contains(sha256('x')).catch(() => undefined);
    expect(listener.connections()).toBeGreaterThan(0);
    await root.close();
    await listener.close();
  });

  it('builds the short forms: a path is a disk lake, a list a fanout', () => {
    expect(build('short')).toBeInstanceOf(DiskLocation);
    const f = build(['f1', ['f2', 'f3']]) as Fanout;
    expect(f).toBeInstanceOf(Fanout);
    expect(f.members[1]).toBeInstanceOf(Fanout);
  });

  it('builds Levels with their flags and copy placement', () => {
    const levels = build({
      kind: 'levels',
      copies: 'first',
      levels: [{ location: 'ssd', write: false, touch: true, timeoutMs: 50, name: 'ssd' }, 'nfs'],
    }) as Levels;
    expect(levels.copies).toBe('first');
    expect(levels.levels.map((l) => [l.write, l.replicate, l.touch, l.name, l.timeoutMs])).toEqual([
      [false, true, true, 'ssd', 50],
      [true, true, false, undefined, undefined],
    ]);
  });

  it('gives smartCache the index a config names', async () => {
    const root = freshPath(base);
    const config = parseConfig({
      location: { kind: 'disk', root: join(root, 'values') },
      memo: { index: join(root, 'memo-index') },
    });
    const cached = smartCache(config)((x: number) => x * 2);
    expect(await cached(21)).toBe(42);
    expect(await new DiskLocation(join(root, 'memo-index')).contains(await cached.keyOf(21))).toBe(true);
  });

  it('builds a named location once, so one disk can sit in two places', () => {
    const root = build(
      { kind: 'levels', levels: [{ ref: 'shared' }, ['other', { ref: 'shared' }]] },
      {
        shared: 'shared-lake',
      },
    ) as Levels;
    const [top, fanout] = root.levels.map((l) => l.location);
    expect(top).toBeInstanceOf(DiskLocation);
    expect((fanout as Fanout).members[1]).toBe(top);
  });

  it('names the path of an unknown or cyclic ref', () => {
    const unknown = buildError({
      location: { kind: 'fanout', members: ['a', { ref: 'nope' }] },
      locations: { a: 'x' },
    });
    expect(unknown.path).toEqual(['location', 'members', 1, 'ref']);
    expect(unknown.message).toMatch(/no location named "nope" in locations \(there are a\)/);

    const cycle = buildError({
      location: { ref: 'a' },
      locations: { a: { kind: 'small', maxSize: 10, location: { ref: 'b' } }, b: ['c', { ref: 'a' }] },
    });
    expect(cycle.path).toEqual(['locations', 'b', 1, 'ref']);
    expect(cycle.message).toMatch(/"a" refers to itself/);
  });

  it('prefixes a location’s own ConfigError with where the node is', () => {
    const config = parseConfig({ location: { kind: 'fanout', members: [{ kind: 'disk', root: 'absent' }] } });
    let error: unknown;
    try {
      buildLocation(config.location, { base, create: false });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).path).toEqual(['location', 'members', 0]);
    expect((error as ConfigError).message).toMatch(/location\.members\.0: no lake at/);
  });

  it('reads secrets from the environment and from files, when the tree is built', async () => {
    const seen: Array<string | undefined> = [];
    const server = createServer((req, res) => {
      seen.push(req.headers.authorization, req.headers['x-token'] as string | undefined);
      res.statusCode = 404;
      res.end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const port = (server.address() as AddressInfo).port;
      writeFileSync(join(base, 'token'), 'from-file\n');
      const config = parseConfig({
        location: {
          kind: 'nginx',
          url: `http://127.0.0.1:${port}/lake/`,
          retries: 0,
          headers: { authorization: { env: 'AUTH' }, 'x-token': { file: 'token' } },
        },
      });
      const nginx: Location = buildLocation(config.location, { base, env: { AUTH: 'Bearer from-env' } });
      await nginx.contains(sha256('x')).catch(() => undefined);
      await nginx.close();
      expect(seen.slice(0, 2)).toEqual(['Bearer from-env', 'from-file']);
    } finally {
      server.close();
    }
  });

  it('fails on a missing secret, naming the field', () => {
    const missing = buildError({ location: { kind: 'redis', password: { env: 'TARN_TEST_UNSET' } } });
    expect(missing.path).toEqual(['location', 'password', 'env']);
    expect(missing.message).toMatch(/environment variable TARN_TEST_UNSET is not set/);

    const unreadable = buildError(
      {
        location: {
          kind: 'levels',
          levels: [
            'a',
            {
              location: {
                kind: 's3',
                bucket: 'b',
                credentials: { accessKeyId: { env: 'K' }, secretAccessKey: { file: 'no-such-file' } },
              },
            },
          ],
        },
      },
      { K: 'k' },
    );
    expect(unreadable.path).toEqual([
      'location',
      'levels',
      1,
      'location',
      'credentials',
      'secretAccessKey',
      'file',
    ]);
    expect(unreadable.message).toMatch(/cannot read the secret file .*no-such-file/);
  });

  it('refuses credentials in URLs built from code too, at the field, without echoing them', () => {
    // buildLocation takes configs from code without parseConfig: the locations refuse them themselves.
    const nodes: Array<[LocationNode, string]> = [
      [{ kind: 'nginx', url: 'http://user:hunter2@127.0.0.1:1/lake/' }, 'url'],
      [{ kind: 's3', bucket: 'b', endpoint: 'http://key:hunter2@127.0.0.1:1' }, 'endpoint'],
    ];
    for (const [node, field] of nodes) {
      const e = (() => {
        try {
          buildLocation({ kind: 'levels', levels: [node] }, { base });
        } catch (error) {
          return error as ConfigError;
        }
      })();
      expect(e).toBeInstanceOf(ConfigError);
      expect(e?.path).toEqual(['location', 'levels', 0, field]);
      expect(e?.message).not.toContain('hunter2');
    }
  });
});

describe('fromConfig', () => {
  it('builds a working storage; relative roots are relative to the config file', async () => {
    const folder = freshPath(base, 'cfg');
    const { mkdirSync } = await import('node:fs');
    mkdirSync(folder);
    const file = join(folder, 'tarn.yaml');
    writeFileSync(file, 'locations:\n  hdd: hdd\nlocation:\n  - { ref: hdd }\n  - other\n');
    const storage = await fromConfigFile(file);
    const key = await storage.write(Buffer.from('hello'));
    expect(key).toBe(sha256('hello'));
    const fanout = storage.location as Fanout;
    expect((fanout.members[0] as DiskLocation).root).toBe(join(folder, 'hdd'));
    await storage.close();

    const again = fromConfig(parseConfig({ location: join(folder, 'hdd') }));
    expect(await again.contains(key)).toBe(true);
    await again.close();
  });
});

describe('a config that does not build', () => {
  /** Builds a config that must fail with a ConfigError. */
  function fails(raw: unknown, env: Record<string, string> = {}) {
    expect(() => fromConfig(parseConfig(raw), { base, env })).toThrow(ConfigError);
  }

  it('leaves no lake behind: a new lake before a missing secret is removed', () => {
    const lake = freshPath(base, 'undone');
    fails({
      location: { kind: 'levels', levels: [lake, { kind: 'redis', password: { env: 'TARN_TEST_UNSET' } }] },
    });
    expect(existsSync(lake)).toBe(false);
  });

  it('removes the folders it created on the way to a new lake, and only those', () => {
    const parent = freshPath(base, 'parent');
    mkdirSync(parent);
    const lake = join(parent, 'a', 'b', 'lake');
    const notAFolder = join(base, 'plain-file');
    writeFileSync(notAFolder, 'x');
    // The second member is a file, not a folder: the disk node fails after the first lake exists.
    fails({ location: [lake, notAFolder] });
    expect(existsSync(join(parent, 'a'))).toBe(false);
    expect(existsSync(parent)).toBe(true);
  });

  it('an empty folder that was there keeps being an empty folder', () => {
    const folder = freshPath(base, 'empty');
    mkdirSync(folder);
    fails({ location: [folder, { kind: 'redis', password: { env: 'TARN_TEST_UNSET' } }] });
    expect(readdirSync(folder)).toEqual([]);
  });

  it('an existing lake, and what it holds, is left as it was', async () => {
    const lake = freshPath(base, 'existing');
    const storage = new HashKeyStorage(lake);
    const key = await storage.write(Buffer.from('kept'));
    await storage.close();
    const before = readdirSync(lake).sort();
    fails({ location: [lake, { kind: 'redis', password: { env: 'TARN_TEST_UNSET' } }] });
    expect(readdirSync(lake).sort()).toEqual(before);
    expect(await new HashKeyStorage(lake).contains(key)).toBe(true);
  });

  it('lakes that disagree on the digest leave no new lake either', () => {
    const sha512Lake = freshPath(base, 'sha512');
    new DiskLocation(sha512Lake, { algorithm: 'sha512' });
    const lake = freshPath(base, 'undone-digest');
    expect(() =>
      fromConfig(parseConfig({ algorithm: 'sha256', location: [lake, sha512Lake] }), { base }),
    ).toThrow(/sha512/);
    expect(existsSync(lake)).toBe(false);
  });

  it('buildLocation undoes too', () => {
    const lake = freshPath(base, 'undone-build');
    const config = parseConfig({ location: [lake, { kind: 'redis', password: { env: 'TARN_TEST_UNSET' } }] });
    expect(() => buildLocation(config.location, { base, env: {} })).toThrow(ConfigError);
    expect(existsSync(lake)).toBe(false);
  });
});

describe('tarn describe', () => {
  it('refuses a config with credentials in a URL (exit 6) and never prints them', async () => {
    const dir = freshPath(base, 'describe');
    mkdirSync(dir);
    for (const location of [
      'kind: nginx\n  url: http://reader:hunter2@127.0.0.1:1/lake/',
      'kind: s3\n  bucket: b\n  endpoint: http://key:hunter2@127.0.0.1:1',
      'kind: redis\n  url: redis://:hunter2@127.0.0.1:1',
    ]) {
      const cfg = join(dir, 'tarn.yaml');
      writeFileSync(cfg, `location:\n  ${location}\n`);
      for (const args of [['describe'], ['--json', 'describe']]) {
        const r = await tarn(['--storage', cfg, ...args]);
        expect(r.code).toBe(6);
        expect(r.stderr).toMatch(/location\.(url|endpoint): credentials in the/);
        expect(r.stdout + r.stderr).not.toContain('hunter2');
      }
    }
  });
});
