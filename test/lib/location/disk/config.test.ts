import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, DiskLocation, HashKeyStorage } from '@tarnjs/tarn';
import { describe, expect, it } from 'vitest';
import { tarn } from '../../../helpers/spawn.js';
import { freshPath, tempDir } from '../../../helpers/tmp.js';

const base = tempDir();

function lakeWith(configYml: string): string {
  const root = freshPath(base);
  mkdirSync(root);
  writeFileSync(join(root, 'config.yml'), configYml);
  return root;
}

describe('config.yml of a lake', () => {
  it('refuses YAML the parser would only warn about (an unknown tag), printing nothing', async () => {
    const warnings: unknown[] = [];
    const onWarning = (w: unknown) => warnings.push(w);
    process.on('warning', onWarning);
    try {
      const err = (() => {
        try {
          new DiskLocation(lakeWith('levels: !custom [1, -1]\n'));
        } catch (e) {
          return e;
        }
      })();
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as Error).message).toMatch(/config\.yml is not valid YAML: .*tag/i);
      // Process warnings are emitted on a later tick.
      await new Promise((r) => setImmediate(r));
    } finally {
      process.off('warning', onWarning);
    }
    expect(warnings).toEqual([]);
  });

  it('reads sizes written the humanfriendly way (decimal units, binary with i)', () => {
    const lake = new DiskLocation(lakeWith('levels: [1, -1]\nfree_disk_size: 10G\nmax_size: 2GiB\n'));
    expect(lake.config.minFreeSpace).toBe(10e9);
    expect(lake.config.maxSize).toBe(2 * 2 ** 30);
  });

  it('derives levels from a recorded hash, as Python does ([1, digest size - 1])', () => {
    const lake = new DiskLocation(lakeWith('hash: sha512\n'));
    expect(lake.config.levels).toEqual([1, 63]);
    expect(lake.digest?.name).toBe('sha512');
    expect(new DiskLocation(lakeWith('hash: {name: blake2b, digest_size: 64}\n')).digest?.name).toBe(
      'blake2b512',
    );
  });

  it('accepts Python tool settings (locker, usage, labels) and honours StatUsage', () => {
    const lake = new DiskLocation(
      lakeWith('levels: [1, -1]\nlocker: GlobalThreadLocker\nusage: StatUsage\nlabels: {name: JsonLabels}\n'),
    );
    expect(lake.config.statUsage).toBe(true);
  });

  it.each([
    ['an unknown field', 'levels: [1, -1]\ncolour: blue\n', /colour/],
    ['a bad size', 'max_size: lots\n', /^max_size: /],
    ['a bad layout', 'levels: [0]\n', /^levels: /],
    ['a hash node has no equivalent of', 'hash: {name: blake2b, digest_size: 20}\n', /^hash: /],
    ['broken YAML', 'levels: [1, -1\n', /not valid YAML/],
    ['a wrong type', 'levels: one\n', /^levels: /],
  ])('names the bad field for %s', (_name, text, message) => {
    const err = (() => {
      try {
        new DiskLocation(lakeWith(text));
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toMatch(message);
  });
});

describe('levels that do not fit the digest', () => {
  function openError(root: string, options?: ConstructorParameters<typeof DiskLocation>[1]): unknown {
    try {
      new DiskLocation(root, options);
    } catch (e) {
      return e;
    }
    return undefined;
  }

  it.each([
    ['levels: [1, 40]\n', /82 hex characters.*sha256 keys have 64/],
    ['hash: sha512\nlevels: [1, 31]\n', /64 hex characters.*sha512 keys have 128/],
    ['levels: [8, 8, 8, 8, -1]\n', /longer than 64 hex characters.*sha256 keys have 64/],
    ['levels: [1, 63]\n', /128 hex characters.*sha256 keys have 64.*records no hash/],
  ])('%j is refused at open, naming the file and the field', (text, detail) => {
    const root = lakeWith(text);
    const err = openError(root);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).path).toEqual(['levels']);
    expect((err as Error).message).toMatch(/^levels: /);
    expect((err as Error).message).toContain(join(root, 'config.yml'));
    expect((err as Error).message).toMatch(detail);
  });

  it('a lake without `hash` is checked against the digest it is opened with', async () => {
    const root = lakeWith('levels: [1, 63]\n');
    expect(new DiskLocation(root, { algorithm: 'sha512' }).config.levels).toEqual([1, 63]);
    const storage = new HashKeyStorage(root, { algorithm: 'sha512' });
    const key = await storage.write(Buffer.from('fits'));
    expect(await storage.read(key, (v) => v.text())).toBe('fits');
    // A storage keyed by another digest than a fixed layout takes is refused when it is built.
    const sha256Lake = lakeWith('levels: [1, 31]\n');
    expect(() => new HashKeyStorage(new DiskLocation(sha256Lake), { algorithm: 'sha512' })).toThrow(
      ConfigError,
    );
    expect(() => new HashKeyStorage(sha256Lake, { algorithm: 'sha512' })).toThrow(ConfigError);
  });

  it('options for a new lake that do not fit are refused before anything is created', () => {
    const root = join(base, 'never-created');
    expect(openError(root, { levels: [1, 40] })).toBeInstanceOf(ConfigError);
    expect(openError(root, { levels: [1, 31], algorithm: 'sha512' })).toBeInstanceOf(ConfigError);
    expect(existsSync(root)).toBe(false);
  });

  it('the CLI exits 6 and says which file and field, without a stack trace', async () => {
    const root = lakeWith('levels: [1, 40]\n');
    const r = await tarn(['--storage', root, 'ls']);
    expect(r.code).toBe(6);
    expect(r.stderr).toContain(join(root, 'config.yml'));
    expect(r.stderr).toMatch(/levels: /);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });
});
