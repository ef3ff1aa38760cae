import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, DiskLocation } from '@tarnjs/tarn';
import { describe, expect, it } from 'vitest';
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
