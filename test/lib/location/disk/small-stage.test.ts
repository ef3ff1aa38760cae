// The synchronous write of small values (SmallStage) against the general path (DiskStage): the same
// outcomes for every case the lake has a rule for, whichever path writes.
import { execFileSync } from 'node:child_process';
import {
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { DiskLocation, HashKeyStorage, KeyMismatchError } from '@tarnjs/tarn';
import { describe, expect, it } from 'vitest';
import { sha256 } from '../../../helpers/data.js';
import { freshPath, tempDir } from '../../../helpers/tmp.js';

const base = tempDir();

describe.each([true, false])('small writes with syncWrites: %s', (syncWrites) => {
  const open = () => {
    const root = freshPath(base);
    const lake = new DiskLocation(root, { syncWrites });
    return { root, lake, storage: new HashKeyStorage(lake) };
  };
  const tmpLeft = (root: string) => readdirSync(join(root, '.tmp'));

  it('stores a new value read-only, and a stored one is `existed` without touching its blob', async () => {
    const { root, lake, storage } = open();
    for (const size of [0, 1, 1024, 64 << 10]) {
      const bytes = Buffer.alloc(size, size % 251);
      expect(await storage.put(bytes)).toEqual({ key: sha256(bytes), size, status: 'stored' });
      const path = lake.pathOf(sha256(bytes));
      expect(readFileSync(path).equals(bytes)).toBe(true);
      expect(statSync(path).mode & 0o222).toBe(0);
      const before = lstatSync(path);
      expect(await storage.put(bytes)).toEqual({ key: sha256(bytes), size, status: 'existed' });
      const after = lstatSync(path);
      expect([after.ino, after.mtimeMs, after.nlink]).toEqual([before.ino, before.mtimeMs, 1]);
    }
    expect(tmpLeft(root)).toEqual([]);
  });

  it('a file path of a small file, and one that is a link to it, store its bytes', async () => {
    const { root, storage } = open();
    const dir = freshPath(base, 'src');
    mkdirSync(dir);
    writeFileSync(join(dir, 'f'), 'a small file');
    symlinkSync(join(dir, 'f'), join(dir, 'link'));
    expect(await storage.write(join(dir, 'f'))).toBe(sha256('a small file'));
    expect(await storage.put(join(dir, 'link'))).toMatchObject({ status: 'existed', size: 12 });
    expect(tmpLeft(root)).toEqual([]);
  });

  it('a link, a FIFO or a folder at the key’s place is moved aside, and the value stored in its place', async () => {
    const { root, lake, storage } = open();
    const outside = freshPath(base, 'outside');
    writeFileSync(outside, 'not to be touched');
    for (const [i, plant] of [
      (p: string) => symlinkSync(outside, p),
      (p: string) => execFileSync('mkfifo', [p]),
      (p: string) => mkdirSync(p),
    ].entries()) {
      const bytes = Buffer.from(`planted ${i}`);
      const path = lake.pathOf(sha256(bytes));
      mkdirSync(join(root, sha256(bytes).slice(0, 2)), { recursive: true });
      plant(path);
      expect((await storage.put(bytes)).status).toBe('stored');
      expect(lstatSync(path).isFile()).toBe(true);
      expect(readFileSync(path).equals(bytes)).toBe(true);
    }
    expect(readFileSync(outside, 'utf8')).toBe('not to be touched');
    expect(readdirSync(join(root, 'tools', 'quarantine'))).toHaveLength(3);
    expect(tmpLeft(root)).toEqual([]);
  });

  it('a shard folder that is a link out of the lake is moved aside: nothing is written through it', async () => {
    const { root, lake, storage } = open();
    const bytes = Buffer.from('behind a linked shard');
    const key = sha256(bytes);
    const elsewhere = freshPath(base, 'elsewhere');
    mkdirSync(elsewhere);
    symlinkSync(elsewhere, join(root, key.slice(0, 2)));
    expect((await storage.put(bytes)).status).toBe('stored');
    expect(readdirSync(elsewhere)).toEqual([]);
    expect(lstatSync(join(root, key.slice(0, 2))).isDirectory()).toBe(true);
    expect(readFileSync(lake.pathOf(key)).equals(bytes)).toBe(true);
  });

  it('a corrupt blob of another size is quarantined and replaced', async () => {
    const { root, lake, storage } = open();
    const bytes = Buffer.from('the true value');
    const key = sha256(bytes);
    mkdirSync(join(root, key.slice(0, 2)), { recursive: true });
    writeFileSync(lake.pathOf(key), 'rot');
    expect((await storage.put(bytes)).status).toBe('stored');
    expect(readFileSync(lake.pathOf(key)).equals(bytes)).toBe(true);
    expect(readdirSync(join(root, 'tools', 'quarantine'))).toHaveLength(1);
  });

  it('an expected key that is not the value’s stores nothing', async () => {
    const { root, lake, storage } = open();
    const bytes = Buffer.from('mismatched');
    await expect(storage.write(bytes, { expectedKey: sha256('other') })).rejects.toBeInstanceOf(
      KeyMismatchError,
    );
    expect(await lake.contains(sha256(bytes))).toBe(false);
    expect(tmpLeft(root)).toEqual([]);
  });
});
