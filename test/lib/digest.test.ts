import { ConfigError, digest, HashKeyStorage, InvalidKeyError } from '@tarnjs/tarn';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../helpers/tmp.js';

describe('digest', () => {
  it('knows the key length of each fixed-length digest', () => {
    expect(digest('sha256').hexLength).toBe(64);
    expect(digest('sha512').hexLength).toBe(128);
    expect(digest('blake2b512').hexLength).toBe(128);
    expect(digest().of(Buffer.from('hello'))).toBe(
      '2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824',
    );
  });

  it('rejects unknown and variable-length digests with a ConfigError', () => {
    expect(() => digest('nope')).toThrow(ConfigError);
    expect(() => digest('shake256')).toThrow(/fixed-length/);
  });
});

describe('key validation', () => {
  const storage = new HashKeyStorage(tempDir());
  const good = '2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824';

  it.each([
    ['empty', ''],
    ['traversal', '../../etc/passwd'],
    ['slash inside', `2c/${good.slice(3)}`],
    ['too short', good.slice(0, 62)],
    ['too long', `${good}00`],
    ['odd length', good.slice(0, 63)],
    ['not hex', `${good.slice(0, 63)}g`],
    ['NUL byte', `${good.slice(0, 63)}\0`],
  ])('rejects a %s key everywhere', async (_name, key) => {
    await expect(storage.read(key)).rejects.toBeInstanceOf(InvalidKeyError);
    await expect(storage.contains(key)).rejects.toBeInstanceOf(InvalidKeyError);
    await expect(storage.delete(key)).rejects.toBeInstanceOf(InvalidKeyError);
    await expect(storage.touch(key)).rejects.toBeInstanceOf(InvalidKeyError);
    await expect(storage.write(Buffer.from('x'), { expectedKey: key })).rejects.toBeInstanceOf(
      InvalidKeyError,
    );
  });

  it('accepts upper-case hex and normalises it', async () => {
    const key = await storage.write(Buffer.from('hello'));
    expect(key).toBe(good);
    expect(await storage.contains(good.toUpperCase())).toBe(true);
  });

  it('rejects non-string keys', async () => {
    await expect(storage.read(42 as unknown as string)).rejects.toBeInstanceOf(InvalidKeyError);
  });
});
