import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, DiskLocation, InvalidKeyError } from '@tarnjs/tarn';
import { describe, expect, it } from 'vitest';
import { sha256 } from '../../../helpers/data.js';
import { freshPath, tempDir } from '../../../helpers/tmp.js';

const base = tempDir();
const key = sha256('hello');

describe('disk layout', () => {
  it('creates a lake exactly as Python tarn does: config.yml, .tmp, tools/usage, tools/labels', () => {
    const root = freshPath(base);
    const lake = new DiskLocation(root);
    expect(readFileSync(join(root, 'config.yml'), 'utf8')).toBe('levels:\n- 1\n- -1\n');
    expect(lake.pathOf(key)).toBe(join(root, key.slice(0, 2), key.slice(2)));
    for (const dir of ['.tmp', 'tools/usage', 'tools/labels']) {
      expect(() => readFileSync(join(root, dir))).toThrow(/EISDIR/);
    }
  });

  it.each([
    [
      [2, -1],
      [key.slice(0, 4), key.slice(4)],
    ],
    [
      [1, 1, -1],
      [key.slice(0, 2), key.slice(2, 4), key.slice(4)],
    ],
    [
      [1, 31],
      [key.slice(0, 2), key.slice(2)],
    ],
  ])('levels %j split the key into %j', (levels, parts) => {
    const root = freshPath(base);
    const lake = new DiskLocation(root, { levels });
    expect(lake.pathOf(key)).toBe(join(root, ...parts));
    expect(new DiskLocation(root).config.levels).toEqual(levels);
  });

  it('fixed levels demand the exact key length', () => {
    const lake = new DiskLocation(freshPath(base), { levels: [1, 31] });
    expect(() => lake.pathOf(`${key}00`)).toThrow(InvalidKeyError);
  });

  it.each([[[]], [[0, -1]], [[-1, 1]], [[1.5]]])('rejects the layout %j', (levels) => {
    expect(() => new DiskLocation(freshPath(base), { levels })).toThrow(ConfigError);
  });

  it('refuses options that contradict an existing lake', () => {
    const root = freshPath(base);
    new DiskLocation(root, { maxSize: '1G' });
    expect(() => new DiskLocation(root, { levels: [2, -1] })).toThrow(/levels/);
    expect(() => new DiskLocation(root, { maxSize: '2G' })).toThrow(/max_size/);
    expect(new DiskLocation(root, { maxSize: 1_000_000_000 }).config.maxSize).toBe(1e9);
  });

  it('does not create a lake when asked not to', () => {
    expect(() => new DiskLocation(freshPath(base), { create: false })).toThrow(/tarn init/);
  });
});
