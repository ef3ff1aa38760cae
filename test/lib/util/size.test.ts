import { ConfigError } from '@tarnjs/tarn';
import { describe, expect, it } from 'vitest';
import { formatSize, parseSize } from '../../../src-lib/dist/util/size.js';

const refusal = (value: unknown): ConfigError => {
  try {
    parseSize(value, ['max_size']);
  } catch (e) {
    return e as ConfigError;
  }
  throw new Error(`${String(value)} was accepted`);
};

describe('parseSize', () => {
  it('reads bytes, decimal units and binary units, with blanks around them, in any case', () => {
    const cases: Array<[unknown, number]> = [
      [0, 0],
      [512, 512],
      ['512', 512],
      ['10G', 10e9],
      [' 10 gb ', 10e9],
      ['1.5K', 1500],
      ['2MiB', 2 * 2 ** 20],
      ['3tib', 3 * 2 ** 40],
      ['8P', 8e15],
      [Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
      [`${Number.MAX_SAFE_INTEGER}`, Number.MAX_SAFE_INTEGER],
    ];
    for (const [value, bytes] of cases) expect(parseSize(value), String(value)).toBe(bytes);
  });

  it('refuses what is not a size, naming the field, and never for an inherited name', () => {
    for (const value of [
      '',
      '10X',
      '-1',
      '1e3',
      '1 constructor',
      '1toString',
      '1..5K',
      1.5,
      -1,
      Number.NaN,
      null,
      {},
    ]) {
      const e = refusal(value);
      expect(e).toBeInstanceOf(ConfigError);
      expect(e.message).toMatch(/^max_size: .* is not a size; use bytes/);
    }
  });

  it('refuses a size of more bytes than a number counts exactly', () => {
    for (const value of ['10000P', `${Number.MAX_SAFE_INTEGER + 1}`, `${'9'.repeat(400)}P`, 2 ** 53, 1e300]) {
      expect(refusal(value).message).toMatch(
        /^max_size: .* is too large a size: at most 9007199254740991 bytes/,
      );
    }
  });

  it('matches in linear time, and quotes a long value briefly', () => {
    const hostile = [
      `1${' '.repeat(100_000)}!`,
      `${' '.repeat(100_000)}x`,
      `1${' '.repeat(50_000)}K${' '.repeat(50_000)}!`,
    ];
    for (const value of hostile) {
      const start = performance.now();
      const e = refusal(value);
      expect(performance.now() - start).toBeLessThan(100);
      expect(e.message.length).toBeLessThan(200);
    }
  });
});

describe('formatSize', () => {
  it('prints bytes with a binary unit', () => {
    expect(formatSize(512)).toBe('512 B');
    expect(formatSize(1536)).toBe('1.50 KiB');
  });
});
