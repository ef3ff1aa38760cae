import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { CollisionError, DiskLocation, digest, HashKeyStorage } from '@tarnjs/tarn';
import { describe, expect, it } from 'vitest';
import { sha256 } from '../../../helpers/data.js';
import { freshPath, tempDir } from '../../../helpers/tmp.js';

const base = tempDir();

describe('permissions', () => {
  it('folders take the root mode and group; blobs are read-only', async () => {
    const root = freshPath(base);
    mkdirSync(root);
    chmodSync(root, 0o750);
    const gid = 1; // 'daemon' on Debian; any group other than ours shows the inheritance
    chownSync(root, -1, gid);
    const storage = new HashKeyStorage(root);
    const key = await storage.write(Buffer.from('perm'));
    const shard = statSync(join(root, key.slice(0, 2)));
    expect(shard.mode & 0o777).toBe(0o750);
    expect(shard.gid).toBe(gid);
    const blob = statSync(join(root, key.slice(0, 2), key.slice(2)));
    expect(blob.mode & 0o777).toBe(0o440);
    expect(blob.gid).toBe(gid);
    // A file source is copied by the kernel, keeping its own mode; the blob still gets the lake's.
    const file = join(base, 'executable.sh');
    writeFileSync(file, '#!/bin/sh\n', { mode: 0o755 });
    const fileKey = await storage.write(file);
    const fromFile = statSync(join(root, fileKey.slice(0, 2), fileKey.slice(2)));
    expect([fromFile.mode & 0o777, fromFile.gid]).toEqual([0o440, gid]);
    // The folders a lake makes when opened, and the quarantine, follow the same rule.
    await storage.location.quarantine?.(key);
    for (const dir of ['.tmp', 'tools', 'tools/usage', 'tools/labels', 'tools/quarantine']) {
      const st = statSync(join(root, dir));
      expect([dir, st.mode & 0o777, st.gid]).toEqual([dir, 0o750, gid]);
    }
  });
});

describe('an existing key', () => {
  it('with a different size and intact bytes is a true collision: kept, and CollisionError', async () => {
    const root = freshPath(base);
    const lake = new DiskLocation(root);
    const key = await new HashKeyStorage(lake).write(Buffer.from('original'));
    // Only a caller of the raw Location API can claim a key for other bytes.
    const stage = await lake.stage({ digest: digest('sha256') });
    await stage?.push(Buffer.from('an impostor value'));
    await expect(stage?.commit(key)).rejects.toBeInstanceOf(CollisionError);
    expect(readFileSync(lake.pathOf(key), 'utf8')).toBe('original');
    expect(readdirSync(join(root, '.tmp'))).toEqual([]);
  });

  it('that is truncated is corrupt: quarantined and replaced by the new copy', async () => {
    const root = freshPath(base);
    const lake = new DiskLocation(root);
    const storage = new HashKeyStorage(lake);
    const key = await storage.write(Buffer.from('full value'));
    chmodSync(lake.pathOf(key), 0o644);
    writeFileSync(lake.pathOf(key), 'full');
    expect(await storage.write(Buffer.from('full value'))).toBe(key);
    expect(readFileSync(lake.pathOf(key), 'utf8')).toBe('full value');
    const quarantined = readdirSync(join(root, 'tools', 'quarantine'));
    expect(quarantined).toHaveLength(1);
    expect(quarantined[0]?.startsWith(key)).toBe(true);
  });
});

describe('Python tarn legacy layout (<key>/data)', () => {
  it('is read, listed and deleted', async () => {
    const root = freshPath(base);
    const lake = new DiskLocation(root);
    const key = sha256('legacy');
    mkdirSync(join(root, key.slice(0, 2), key.slice(2)), { recursive: true });
    writeFileSync(join(root, key.slice(0, 2), key.slice(2), 'data'), 'legacy');
    const storage = new HashKeyStorage(lake);
    expect(await storage.read(key, (v) => v.text(), { verify: true })).toBe('legacy');
    const keys: string[] = [];
    for await (const k of storage.keys()) keys.push(k);
    expect(keys).toEqual([key]);
    expect(await storage.write(Buffer.from('legacy'))).toBe(key);
    expect(await storage.delete(key)).toBe(true);
    expect(await storage.contains(key)).toBe(false);
  });
});

describe('listing', () => {
  it('skips config.yml, tools/, .tmp/ and foreign files', async () => {
    const root = freshPath(base);
    const storage = new HashKeyStorage(root);
    const key = await storage.write(Buffer.from('listed'));
    writeFileSync(join(root, 'README'), 'not a blob');
    writeFileSync(join(root, key.slice(0, 2), 'notes.txt'), 'not a blob');
    writeFileSync(join(root, '.tmp', 'junk'), 'x');
    const keys: string[] = [];
    for await (const k of storage.keys()) keys.push(k);
    expect(keys).toEqual([key]);
  });
});

describe('touch', () => {
  it('updates the blob mtime, or the StatUsage marker Python reads', async () => {
    const root = freshPath(base);
    const storage = new HashKeyStorage(root);
    const key = await storage.write(Buffer.from('touched'));
    const path = join(root, key.slice(0, 2), key.slice(2));
    utimesSync(path, new Date(2000, 1, 1), new Date(2000, 1, 1));
    expect(await storage.touch(key)).toBe(true);
    expect(statSync(path).mtimeMs).toBeGreaterThan(Date.now() - 60_000);
    expect(await storage.touch(sha256('absent'))).toBe(false);

    const root2 = freshPath(base);
    mkdirSync(root2);
    writeFileSync(join(root2, 'config.yml'), 'levels:\n- 1\n- -1\nusage: StatUsage\n');
    const s2 = new HashKeyStorage(root2);
    const k2 = await s2.write(Buffer.from('used'));
    const mark = join(root2, 'tools', 'usage', k2.slice(0, 2), k2.slice(2));
    utimesSync(mark, new Date(2000, 1, 1), new Date(2000, 1, 1));
    // Verification reads every blob, but is not a use: the last-use record stays.
    expect((await s2.verify()).checked).toBe(1);
    expect(statSync(mark).mtimeMs).toBe(new Date(2000, 1, 1).getTime());
    await s2.read(k2, () => undefined);
    expect(statSync(mark).mtimeMs).toBeGreaterThan(Date.now() - 60_000);
  });
});

describe('stale temp files', () => {
  it('are swept when their writer is dead or long silent, never when it is alive', async () => {
    const root = freshPath(base);
    const lake = new DiskLocation(root, { staleTempAfterMs: 3_600_000 });
    const dead = spawnSync(process.execPath, [
      '-e',
      'process.stdout.write(String(process.pid))',
    ]).stdout.toString();
    const live = readdirSync(join(root, '.tmp'));
    expect(live).toEqual([]);
    // Names as a DiskStage makes them: stage-<host tag>-<pid>-<random>.
    const stage = await lake.stage();
    const [ours] = readdirSync(join(root, '.tmp'));
    const tag = (ours as string).split('-')[1] as string;
    const deadFile = `stage-${tag}-${dead}-0123456789ab`;
    const liveFile = `stage-${tag}-${process.ppid}-0123456789ab`;
    const oldForeign = `${sha256('x')}abcdefgh`; // Python tarn's temp naming
    const newForeign = `${sha256('y')}abcdefgh`;
    for (const f of [deadFile, liveFile, oldForeign, newForeign])
      writeFileSync(join(root, '.tmp', f), 'partial');
    utimesSync(join(root, '.tmp', oldForeign), new Date(2000, 1, 1), new Date(2000, 1, 1));
    utimesSync(join(root, '.tmp', liveFile), new Date(2000, 1, 1), new Date(2000, 1, 1));

    const { tempFilesRemoved } = await lake.sweep();
    expect(tempFilesRemoved).toBe(2);
    expect(readdirSync(join(root, '.tmp')).sort()).toEqual([liveFile, newForeign, ours].sort());
    // The live stage still publishes.
    await stage?.push(Buffer.from('alive'));
    expect(await stage?.commit(sha256('alive'))).toEqual({ status: 'stored' });
  });
});
