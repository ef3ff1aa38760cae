import { execFileSync } from 'node:child_process';
import {
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { ConfigError, DiskLocation, HashKeyStorage, NotFoundError } from '@tarnjs/tarn';
import { describe, expect, it } from 'vitest';
import { sha256 } from '../../../helpers/data.js';
import { tarn } from '../../../helpers/spawn.js';
import { freshPath, tempDir } from '../../../helpers/tmp.js';

const base = tempDir();
const LONG_AGO = new Date(2001, 2, 3);

/** A file outside every lake, whose bytes hash to the key it is planted under (so a followed link would even verify). */
function outsideFile(content: string): { path: string; key: string } {
  const dir = freshPath(base, 'outside');
  mkdirSync(dir);
  const path = join(dir, 'secret');
  writeFileSync(path, content);
  utimesSync(path, LONG_AGO, LONG_AGO);
  return { path, key: sha256(content) };
}

async function listed(storage: HashKeyStorage): Promise<string[]> {
  const keys: string[] = [];
  for await (const k of storage.keys()) keys.push(k);
  return keys;
}

describe('a lake never follows a link out of itself', () => {
  it('a .tmp that is a symlink is never swept through: verify reports it, a write refuses, nothing outside is deleted', async () => {
    const root = freshPath(base);
    const storage = new HashKeyStorage(root);
    const kept = await storage.write(Buffer.from('before the link'));
    const victim = freshPath(base, 'victim');
    mkdirSync(victim);
    // Old files that a sweep through the link would take for stale temp files, in both namings.
    const names = [`${sha256('v')}abcdefgh`, 'stage-00000000-1-0123456789ab', 'notes.txt'];
    for (const n of names) {
      writeFileSync(join(victim, n), 'precious');
      utimesSync(join(victim, n), LONG_AGO, LONG_AGO);
    }
    // Swapped in after the lake was opened: the sweep itself must refuse to go through it.
    execFileSync('rm', ['-rf', join(root, '.tmp')]);
    symlinkSync(victim, join(root, '.tmp'));
    const report = await storage.verify();
    expect(report.checked).toBe(1);
    expect(report.failed).toEqual([
      {
        where: `disk ${root}`,
        message: expect.stringMatching(/\.tmp is a symbolic link; a lake never follows one/),
      },
    ]);
    // A write of the same, long-open storage (its one sweep is done) leaves nothing behind there either.
    await storage.write(Buffer.from('after the link'));
    // Opened anew, the lake refuses at once.
    expect(() => new HashKeyStorage(root)).toThrow(ConfigError);
    expect(() => new HashKeyStorage(root)).toThrow(/\.tmp is a symbolic link/);
    expect(readdirSync(victim).sort()).toEqual([...names].sort());
    expect(await storage.read(kept, (v) => v.text())).toBe('before the link');
  });

  it.each(['tools', 'tools/quarantine', 'tools/locks', 'tools/usage'])(
    'a lake whose %s is a symbolic link is refused at open, and nothing is written through it',
    (folder) => {
      const root = freshPath(base);
      new DiskLocation(root);
      const elsewhere = freshPath(base, 'elsewhere');
      mkdirSync(elsewhere);
      execFileSync('rm', ['-rf', join(root, folder)]);
      mkdirSync(join(root, folder, '..'), { recursive: true });
      symlinkSync(elsewhere, join(root, folder));
      expect(() => new DiskLocation(root)).toThrow(ConfigError);
      expect(() => new DiskLocation(root)).toThrow(new RegExp(`${folder} is a symbolic link`));
      expect(readdirSync(elsewhere)).toEqual([]);
    },
  );

  it('a sweep removes only temp files of tarn and Python tarn, never other names in .tmp', async () => {
    const root = freshPath(base);
    const lake = new DiskLocation(root);
    writeFileSync(join(root, '.tmp', 'README'), 'not a temp file');
    utimesSync(join(root, '.tmp', 'README'), LONG_AGO, LONG_AGO);
    expect((await lake.sweep()).tempFilesRemoved).toBe(0);
    expect(readdirSync(join(root, '.tmp'))).toEqual(['README']);
  });

  it('tarn verify lists a linked blob as foreign, leaves it in place and exits 4; cat does not serve it', async () => {
    const root = freshPath(base);
    const lake = new DiskLocation(root);
    const kept = await new HashKeyStorage(lake).write(Buffer.from('a real value'));
    const target = outsideFile('secret for the cli');
    mkdirSync(join(root, target.key.slice(0, 2)), { recursive: true });
    symlinkSync(target.path, lake.pathOf(target.key));
    const r = await tarn(['--storage', root, 'verify']);
    expect(r.code).toBe(4);
    expect(r.stderr).toContain(
      `foreign: ${lake.pathOf(target.key)} (symlink): not a value, never read; left in place`,
    );
    expect(r.stdout).toMatch(/^1 values, .* checked, 0 corrupt, 1 foreign$/m);
    expect(lstatSync(lake.pathOf(target.key)).isSymbolicLink()).toBe(true);
    const json = await tarn(['--storage', root, '--json', 'verify']);
    expect(json.code).toBe(4);
    expect(JSON.parse(json.stdout).foreign).toEqual([{ path: lake.pathOf(target.key), reason: 'symlink' }]);
    const cat = await tarn(['--storage', root, 'cat', target.key]);
    expect(cat.code).toBe(3);
    expect(cat.stdout).toBe('');
    expect((await tarn(['--storage', root, 'cat', kept])).stdout).toBe('a real value');
  });

  it('a blob that is a symlink is not served, listed, passed by verify, touched through, and delete removes only the link', async () => {
    const root = freshPath(base);
    const lake = new DiskLocation(root);
    const storage = new HashKeyStorage(lake);
    const target = outsideFile('secret one');
    mkdirSync(join(root, target.key.slice(0, 2)));
    symlinkSync(target.path, lake.pathOf(target.key));

    expect(await lake.read(target.key)).toBeNull();
    await expect(storage.read(target.key)).rejects.toBeInstanceOf(NotFoundError);
    expect(await storage.contains(target.key)).toBe(false);
    expect(await listed(storage)).toEqual([]);
    expect(await storage.touch(target.key)).toBe(false);
    expect(statSync(target.path).mtime).toEqual(LONG_AGO);
    const report = await storage.verify();
    expect(report.checked).toBe(0);
    expect(report.foreign).toEqual([{ path: lake.pathOf(target.key), reason: 'symlink' }]);

    expect(await storage.delete(target.key)).toBe(true);
    expect(() => lstatSync(lake.pathOf(target.key))).toThrow(/ENOENT/);
    expect(readFileSync(target.path, 'utf8')).toBe('secret one');
  });

  it("Python's legacy <key>/data that is a symlink is treated the same", async () => {
    const root = freshPath(base);
    const lake = new DiskLocation(root);
    const storage = new HashKeyStorage(lake);
    const target = outsideFile('secret two');
    const folder = lake.pathOf(target.key);
    mkdirSync(folder, { recursive: true });
    symlinkSync(target.path, join(folder, 'data'));

    expect(await lake.read(target.key)).toBeNull();
    expect(await storage.contains(target.key)).toBe(false);
    expect(await listed(storage)).toEqual([]);
    expect(await storage.touch(target.key)).toBe(false);
    expect(statSync(target.path).mtime).toEqual(LONG_AGO);
    expect((await storage.verify()).foreign).toEqual([{ path: join(folder, 'data'), reason: 'symlink' }]);
    expect(await storage.delete(target.key)).toBe(true);
    expect(() => lstatSync(folder)).toThrow(/ENOENT/);
    expect(readFileSync(target.path, 'utf8')).toBe('secret two');
  });

  it('a shard folder that is a symlink (2c -> elsewhere) is not followed by reads, touch, delete or verify', async () => {
    const root = freshPath(base);
    const lake = new DiskLocation(root);
    const storage = new HashKeyStorage(lake);
    const target = outsideFile('secret three');
    // elsewhere/<rest of the key> holds bytes that hash to the key.
    const elsewhere = freshPath(base, 'elsewhere');
    mkdirSync(elsewhere);
    const rest = join(elsewhere, target.key.slice(2));
    writeFileSync(rest, 'secret three');
    utimesSync(rest, LONG_AGO, LONG_AGO);
    const shard = join(root, target.key.slice(0, 2));
    symlinkSync(elsewhere, shard);

    expect(await lake.read(target.key)).toBeNull();
    expect(await storage.contains(target.key)).toBe(false);
    expect(await listed(storage)).toEqual([]);
    expect(await storage.touch(target.key)).toBe(false);
    expect(statSync(rest).mtime).toEqual(LONG_AGO);
    expect(await storage.delete(target.key)).toBe(false);
    expect(readFileSync(rest, 'utf8')).toBe('secret three');
    expect((await storage.verify()).foreign).toEqual([{ path: shard, reason: 'symlink' }]);
  });

  it('FIFOs, sockets and device nodes at blob positions are never opened, and verify reports them', async () => {
    const root = freshPath(base);
    const lake = new DiskLocation(root);
    const storage = new HashKeyStorage(lake);
    const [fifo, socket, device] = ['fifo', 'socket', 'device'].map((s) => sha256(s)) as [
      string,
      string,
      string,
    ];
    for (const key of [fifo, socket, device]) mkdirSync(join(root, key.slice(0, 2)), { recursive: true });
    execFileSync('mkfifo', [lake.pathOf(fifo)]);
    // Bound by a name relative to its folder: a socket's path is limited to 107 bytes.
    execFileSync(
      'python3',
      ['-c', 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])', socket.slice(2)],
      { cwd: join(root, socket.slice(0, 2)) },
    );
    execFileSync('mknod', [lake.pathOf(device), 'c', '1', '3']); // like /dev/null

    // Opening the FIFO for reading would block for ever: these must answer at once.
    for (const key of [fifo, socket, device]) {
      expect(await lake.read(key)).toBeNull();
      expect(await storage.contains(key)).toBe(false);
    }
    const report = await storage.verify();
    expect(report.checked).toBe(0);
    expect(report.foreign.sort((a, b) => a.reason.localeCompare(b.reason))).toEqual([
      { path: lake.pathOf(device), reason: 'device' },
      { path: lake.pathOf(fifo), reason: 'fifo' },
      { path: lake.pathOf(socket), reason: 'socket' },
    ]);
  }, 10_000);

  it('a write to a key held by a symlink moves the link aside and stores the value; the target is untouched', async () => {
    const root = freshPath(base);
    const lake = new DiskLocation(root);
    const storage = new HashKeyStorage(lake);
    const target = outsideFile('secret four');
    mkdirSync(join(root, target.key.slice(0, 2)));
    symlinkSync(target.path, lake.pathOf(target.key));

    expect(await storage.write(Buffer.from('secret four'))).toBe(target.key);
    expect(lstatSync(lake.pathOf(target.key)).isFile()).toBe(true);
    expect(await storage.read(target.key, (v) => v.text(), { verify: true })).toBe('secret four');
    const aside = readdirSync(join(root, 'tools', 'quarantine'));
    expect(aside).toHaveLength(1);
    expect(lstatSync(join(root, 'tools', 'quarantine', aside[0] as string)).isSymbolicLink()).toBe(true);
    expect(statSync(target.path).mtime).toEqual(LONG_AGO);
  });

  it('a write under a shard folder that is a symlink never lands outside the lake', async () => {
    const root = freshPath(base);
    const lake = new DiskLocation(root);
    const storage = new HashKeyStorage(lake);
    const key = sha256('lands inside');
    const elsewhere = freshPath(base, 'elsewhere');
    mkdirSync(elsewhere);
    symlinkSync(elsewhere, join(root, key.slice(0, 2)));

    expect(await storage.write(Buffer.from('lands inside'))).toBe(key);
    expect(readdirSync(elsewhere)).toEqual([]);
    expect(lstatSync(join(root, key.slice(0, 2))).isDirectory()).toBe(true);
    expect(readFileSync(lake.pathOf(key), 'utf8')).toBe('lands inside');
  });

  it('a StatUsage marker that is a symlink is not followed when a read records its use', async () => {
    const root = freshPath(base);
    mkdirSync(root);
    writeFileSync(join(root, 'config.yml'), 'levels:\n- 1\n- -1\nusage: StatUsage\n');
    const storage = new HashKeyStorage(root);
    const key = await storage.write(Buffer.from('used'));
    const mark = join(root, 'tools', 'usage', key.slice(0, 2), key.slice(2));
    const target = outsideFile('not a marker');
    execFileSync('rm', ['-f', mark]);
    symlinkSync(target.path, mark);

    expect(await storage.read(key, (v) => v.text())).toBe('used');
    expect(await storage.touch(key)).toBe(true);
    expect(statSync(target.path).mtime).toEqual(LONG_AGO);
    expect(readFileSync(target.path, 'utf8')).toBe('not a marker');
  });
});

describe.each([true, false])(
  'reads with syncReads: %s (small blobs read whole on the calling thread, or through the pool)',
  (syncReads) => {
    it('links, FIFOs and linked shard folders give nothing; small and large values read whole; a delete meanwhile changes nothing', async () => {
      const root = freshPath(base);
      const lake = new DiskLocation(root, { syncReads });
      const storage = new HashKeyStorage(lake);
      // A link at a blob's place, and a shard folder that is a link, both to bytes that hash to the key.
      const linked = outsideFile(`linked ${syncReads}`);
      mkdirSync(join(root, linked.key.slice(0, 2)), { recursive: true });
      symlinkSync(linked.path, lake.pathOf(linked.key));
      const viaShard = outsideFile(`via a shard ${syncReads}`);
      const elsewhere = freshPath(base, 'elsewhere');
      mkdirSync(elsewhere);
      writeFileSync(join(elsewhere, viaShard.key.slice(2)), `via a shard ${syncReads}`);
      symlinkSync(elsewhere, join(root, viaShard.key.slice(0, 2)));
      const fifo = sha256(`fifo ${syncReads}`);
      mkdirSync(join(root, fifo.slice(0, 2)), { recursive: true });
      execFileSync('mkfifo', [lake.pathOf(fifo)]);
      for (const key of [linked.key, viaShard.key, fifo]) expect(await lake.read(key)).toBeNull();

      for (const size of [0, 1024, 64 << 10, (64 << 10) + 1, 300 << 10]) {
        const bytes = Buffer.alloc(size, size % 251);
        const key = await storage.write(bytes);
        const value = await storage.read(key);
        expect(value.size).toBe(size);
        expect(value.path).toBe(lake.pathOf(key));
        // Deleted while the value is open: it is still read in full.
        await storage.delete(key);
        expect((await value.bytes()).equals(bytes)).toBe(true);
        const parts: Buffer[] = [];
        for await (const c of value.stream()) parts.push(c as Buffer);
        expect(Buffer.concat(parts).equals(bytes)).toBe(true);
        await value.close();
      }
    }, 10_000);
  },
);
