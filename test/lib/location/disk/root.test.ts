import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, DiskLocation } from '@tarnjs/tarn';
import { describe, expect, it } from 'vitest';
import { freshPath, tempDir } from '../../../helpers/tmp.js';

const base = tempDir();
const file = join(base, 'a-file');
writeFileSync(file, '');

const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

function refusal(root: string, create = true): ConfigError {
  try {
    new DiskLocation(root, { create });
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return e as ConfigError;
  }
  throw new Error(`${root} was opened`);
}

describe('a lake root that cannot be a folder', () => {
  it('is a ConfigError naming the root and the reason, whether or not the lake may be created', () => {
    // The OS's wording of a reason varies: the root and the advice do not.
    for (const create of [true, false]) {
      expect(refusal(join(file, 'lake'), create).message).toMatch(
        new RegExp(`^cannot look at ${esc(join(file, 'lake'))}: .*; a part of the path is not a folder$`),
      );
      const long = join(base, 'x'.repeat(300));
      expect(refusal(long, create).message).toMatch(
        new RegExp(`^cannot look at ${esc(long)}: .*; the name is too long$`),
      );
      expect(refusal(join(base, 'a\0b'), create).message).toBe(
        `${JSON.stringify(join(base, 'a\0b'))} cannot be a lake folder: a path cannot contain a NUL character`,
      );
      expect(refusal(file, create).message).toBe(`${file} is not a folder`);
    }
    expect(refusal(freshPath(base), false).message).toMatch(/^no lake at .*; create it with `tarn init/);
  });

  it.runIf(existsSync('/proc/self'))('is refused under /proc, where Node would retry mkdir for ever', () => {
    const e = refusal('/proc/tarn-lake/a');
    expect(e.message).toBe(
      'cannot create the folder /proc/tarn-lake/a: no such file or directory; no folder can be created there',
    );
    expect((e.cause as NodeJS.ErrnoException).code).toBe('ENOENT');
  });

  it('still creates every missing folder of a new root', () => {
    const root = join(freshPath(base), 'deep', 'er');
    expect(new DiskLocation(root).root).toBe(root);
    expect(existsSync(join(root, 'config.yml'))).toBe(true);
  });
});
