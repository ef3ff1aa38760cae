import { ConfigError, parseConfig } from '@tarnjs/tarn';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';

/** The ConfigError of an invalid config (fails the test when the config is accepted). */
function rejected(raw: unknown): ConfigError {
  try {
    parseConfig(raw);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return e as ConfigError;
  }
  throw new Error(`accepted: ${JSON.stringify(raw)}`);
}

const ssh = { host: 'remote-host', root: '/lake', port: 2222, username: 'me', knownHostsPath: 'kh' };

describe('config schema', () => {
  it('parses every kind with its options', () => {
    const nodes = [
      { kind: 'disk', root: 'lake', levels: [1, -1], maxSize: '500G', minFreeSpace: 1000, fsync: true },
      { kind: 'disk', root: '/x', create: false, staleTempAfterMs: 60_000 },
      {
        kind: 'redis',
        url: 'redis://my-host:6379/1',
        username: 'u',
        password: { env: 'REDIS_PASSWORD' },
        prefix: 'tarn:',
        ttl: 3600,
        maxValueSize: '1MiB',
        connectTimeoutMs: 1000,
        commandTimeoutMs: 2000,
      },
      {
        kind: 's3',
        bucket: 'my-bucket',
        prefix: 'lake/',
        endpoint: 'http://my-s3-host:9000',
        region: 'eu-west-1',
        forcePathStyle: true,
        credentials: {
          accessKeyId: { env: 'AWS_ACCESS_KEY_ID' },
          secretAccessKey: { file: '/run/secrets/s3' },
          sessionToken: { env: 'AWS_SESSION_TOKEN' },
        },
        partSize: '16MiB',
        conditionalWrites: false,
        connectTimeoutMs: 1000,
        requestTimeoutMs: 30_000,
      },
      {
        kind: 'sftp',
        ...ssh,
        privateKeyPath: 'id_ed25519',
        passphrase: { env: 'PASSPHRASE' },
        hostKeyFingerprint: 'SHA256:abc',
        readyTimeoutMs: 5000,
        connections: 4,
      },
      {
        kind: 'scp',
        ...ssh,
        privateKey: { file: 'key' },
        agent: '/tmp/agent.sock',
        transferTimeoutMs: 10_000,
      },
      {
        kind: 'nginx',
        url: 'http://cdn/lake/',
        headers: { authorization: { env: 'TOKEN' } },
        connectTimeoutMs: 100,
        requestTimeoutMs: 200,
        retries: 0,
      },
      { kind: 'fanout', members: ['a', { kind: 'disk', root: 'b' }] },
      { kind: 'small', maxSize: '100K', location: { kind: 'redis' } },
      { kind: 'small', maxSize: 1024, location: 'a' },
      {
        kind: 'levels',
        levels: [
          { location: 'a', write: false, replicate: false, touch: true, name: 'top', timeoutMs: 50 },
          'b',
          ['c', 'd'],
          { kind: 'disk', root: 'e' },
        ],
      },
    ];
    for (const location of nodes) expect(parseConfig({ location }).location).toEqual(location);
  });

  it('keeps the disk-only configs valid', () => {
    expect(parseConfig({ algorithm: 'sha256', location: { kind: 'disk', root: '/l' } })).toEqual({
      algorithm: 'sha256',
      location: { kind: 'disk', root: '/l' },
    });
  });

  it('takes the short forms: a path is a disk lake, a list a fanout', () => {
    expect(parseConfig({ location: '/mount/hdd/lake' }).location).toBe('/mount/hdd/lake');
    expect(parseConfig({ location: ['/a', ['/b', '/c']] }).location).toEqual(['/a', ['/b', '/c']]);
  });

  it('takes named locations and refs anywhere', () => {
    const config = parseConfig({
      locations: { hdd3: '/mount/hdd3/lake', cache: { kind: 'redis' } },
      location: {
        kind: 'levels',
        levels: [{ ref: 'cache' }, ['/a', { ref: 'hdd3' }], { kind: 'ref', ref: 'hdd3' }],
      },
    });
    expect(Object.keys(config.locations ?? {})).toEqual(['hdd3', 'cache']);
  });

  it("parses the original README's tree as YAML", () => {
    const yaml = `
location:
  kind: levels
  levels:
    - kind: small
      maxSize: 10MiB
      location: { kind: redis, url: my-host }
    - /mount/fast-ssd/lake
    - - /mount/hdd1/lake
      - /mount/hdd2/lake
      - /mount/hdd3/lake
      - kind: levels
        levels: [/mount/hdd3/lake, /mount/old-hdd/lake]
    - /mount/slower-nfs/lake
    - { kind: s3, endpoint: 'http://my-s3-host', bucket: my-bucket }
    - { kind: sftp, host: remote-host, root: /path/to/remote/folder }
`;
    const config = parseConfig(parse(yaml));
    expect(config.location).toMatchObject({ kind: 'levels' });
    const levels = (config.location as { levels: unknown[] }).levels;
    expect(levels).toHaveLength(6);
    expect(levels[2]).toEqual([
      '/mount/hdd1/lake',
      '/mount/hdd2/lake',
      '/mount/hdd3/lake',
      { kind: 'levels', levels: ['/mount/hdd3/lake', '/mount/old-hdd/lake'] },
    ]);
  });

  it('names the exact path of a bad field deep in the tree', () => {
    const cases: Array<[unknown, Array<string | number>, RegExp]> = [
      [{ kind: 'disk', root: 42 }, ['location', 'root'], /expected string/],
      [
        {
          kind: 'levels',
          levels: ['a', { location: { kind: 'fanout', members: [{ kind: 'disk', root: 5 }] } }],
        },
        ['location', 'levels', 1, 'location', 'members', 0, 'root'],
        /expected string/,
      ],
      [
        ['a', ['b', { kind: 'small', maxSize: '10X', location: 'c' }]],
        ['location', 1, 1, 'maxSize'],
        /not a size/,
      ],
      [{ kind: 'levels', levels: [{ location: 'a', wirte: true }] }, ['location', 'levels', 0], /"wirte"/],
      [
        { kind: 'levels', levels: [{ location: 'a', write: 'yes' }] },
        ['location', 'levels', 0, 'write'],
        /boolean/,
      ],
      [{ kind: 'redis', url: 'x', tll: 5 }, ['location'], /"tll"/],
      [{ kind: 'small', location: 'a' }, ['location', 'maxSize'], /required/],
      [{ kind: 'sftp', host: 'h', root: '/r', readyTimeoutMs: 1.5 }, ['location', 'readyTimeoutMs'], /int/],
      [42, ['location'], /folder path, a list of locations, or an object with kind/],
      [[], ['location'], />=1/],
    ];
    for (const [location, path, message] of cases) {
      const e = rejected({ location });
      expect(e.path, JSON.stringify(location)).toEqual(path);
      expect(e.message).toContain(`${path.join('.')}: `);
      expect(e.message).toMatch(message);
    }
  });

  it('rejects an unknown kind, naming the kinds there are', () => {
    const e = rejected({ location: { kind: 'levels', levels: [{ kind: 'dsik', root: '/a' }] } });
    expect(e.path).toEqual(['location', 'levels', 0, 'kind']);
    expect(e.message).toMatch(/unknown kind "dsik"; one of disk, redis, s3/);
  });

  it('rejects unknown top-level fields and bad names', () => {
    expect(rejected({ location: 'a', locaitons: {} }).message).toMatch(/"locaitons"/);
    expect(rejected({ location: 'a', locations: { x: 5 } }).path).toEqual(['locations', 'x']);
  });

  it('never takes a secret inline', () => {
    const e = rejected({ location: { kind: 'redis', password: 'hunter2' } });
    expect(e.path).toEqual(['location', 'password']);
    expect(e.message).toMatch(/never inline: give \{ env: VAR \} or \{ file: \/path \}/);
    expect(
      rejected({
        location: {
          kind: 's3',
          bucket: 'b',
          credentials: { accessKeyId: { env: 'A' }, secretAccessKey: 'x' },
        },
      }).path,
    ).toEqual(['location', 'credentials', 'secretAccessKey']);
    expect(rejected({ location: { kind: 'sftp', ...ssh, passphrase: 'x' } }).path).toEqual([
      'location',
      'passphrase',
    ]);
    expect(
      rejected({ location: { kind: 'nginx', url: 'http://x/', headers: { authorization: 'Bearer x' } } })
        .path,
    ).toEqual(['location', 'headers', 'authorization']);
  });

  it("refuses credentials in a URL's user-info, naming the field and where they go, never echoing them", () => {
    const cases: Array<[Record<string, unknown>, string, RegExp]> = [
      [{ kind: 'nginx', url: 'http://user:hunter2@cdn/lake/' }, 'url', /give them as headers/],
      [{ kind: 'nginx', url: 'http://hunter2@cdn/lake/' }, 'url', /give them as headers/],
      [{ kind: 's3', bucket: 'b', endpoint: 'http://key:hunter2@minio:9000' }, 'endpoint', /credentials: \{/],
      [{ kind: 'redis', url: 'redis://:hunter2@cache:6379' }, 'url', /password: \{ env: VAR \}/],
      [{ kind: 'redis', url: 'redis://tarn:hunter2@cache:6379/0' }, 'url', /password: \{ env: VAR \}/],
      [{ kind: 'redis', url: 'tarn:hunter2@cache:6379' }, 'url', /password: \{ env: VAR \}/],
      // ioredis takes any client option from the query, the password too.
      [{ kind: 'redis', url: 'redis://cache:6379?password=hunter2' }, 'url', /password: \{ env: VAR \}/],
    ];
    for (const [node, field, where] of cases) {
      const e = rejected({ location: { kind: 'levels', levels: [node] } });
      expect(e.path).toEqual(['location', 'levels', 0, field]);
      expect(e.message).toMatch(/credentials in the (URL|endpoint)/);
      expect(e.message).toMatch(where);
      expect(e.message).not.toContain('hunter2');
    }
    // An @ in the query, or written %40 in the path, is no user-info.
    expect(() =>
      parseConfig({
        location: [
          { kind: 'nginx', url: 'https://cdn/%40team/lake/?sig=a@b' },
          { kind: 'redis', url: 'redis://cache:6379/0?family=6' },
          { kind: 's3', bucket: 'b', endpoint: 'http://minio:9000' },
        ],
      }),
    ).not.toThrow();
  });
});
