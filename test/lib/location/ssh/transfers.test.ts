import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AbortError, HashKeyStorage, RemoteError, SCPLocation, SFTPLocation } from '@tarnjs/tarn';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { available } from '../../../bed/index.js';
import { type Sshd, startSshd } from '../../../bed/services.js';
import { pseudoRandom, sha256 } from '../../../helpers/data.js';
import { lakeObjects } from '../../../helpers/lake.js';

/** The sessions below sshd's listener (privileged child, user child, sftp or scp), deepest last. */
function sessions(sshd: Sshd): string[] {
  const tree = (pid: string): string[] => {
    const children = spawnSync('pgrep', ['-P', pid]).stdout.toString().split('\n').filter(Boolean);
    return [pid, ...children.flatMap(tree)];
  };
  return tree(String(sshd.pid)).slice(1);
}

/** Freezes every open session (SIGSTOP): the host keeps the connections but sends nothing more. */
function freezeSessions(sshd: Sshd): () => void {
  const frozen = sessions(sshd);
  if (frozen.length > 0) spawnSync('kill', ['-STOP', ...frozen]);
  return () => {
    if (frozen.length > 0) spawnSync('kill', ['-CONT', ...frozen]);
  };
}

const blobPath = (root: string, key: string) => join(root, key.slice(0, 2), key.slice(2));

describe.runIf(available('sshd'))(
  'SFTP small writes (existence check with the OPEN, pipelined WRITEs)',
  () => {
    let sshd: Sshd;
    beforeAll(async () => {
      sshd = await startSshd();
    });
    afterAll(() => sshd?.stop());
    const location = (root: string) =>
      new SFTPLocation('127.0.0.1', root, {
        port: sshd.port,
        username: sshd.username,
        privateKeyPath: sshd.privateKeyPath,
        hostKeyFingerprint: sshd.hostKeyFingerprint,
      });

    it('stores a small value read-only; written again it is `existed`, the blob untouched and no temp file left', async () => {
      const root = `${sshd.root}/small`;
      const storage = new HashKeyStorage(location(root));
      const data = pseudoRandom('sftp small', 100 << 10);
      expect(await storage.put(data)).toMatchObject({ status: 'stored' });
      const blob = blobPath(root, sha256(data));
      expect(readFileSync(blob).equals(data)).toBe(true);
      expect(statSync(blob).mode & 0o777).toBe(0o444);
      const before = statSync(blob);
      expect(await storage.put(data)).toMatchObject({ status: 'existed' });
      const after = statSync(blob);
      expect([after.ino, after.mtimeMs]).toEqual([before.ino, before.mtimeMs]);
      expect(await lakeObjects(root)).toEqual([`${sha256(data).slice(0, 2)}/${sha256(data).slice(2)}`]);
      await storage.close();
    });

    it('writers racing on one small key: one stores, the others find it existed, one blob and no temp file', async () => {
      const root = `${sshd.root}/race`;
      const data = pseudoRandom('sftp race', 4096);
      // Independent writers, as separate processes would be: a location (and connections) each.
      const writers = Array.from({ length: 6 }, () => new HashKeyStorage(location(root)));
      const results = await Promise.all(writers.map((w) => w.put(data)));
      expect(results.filter((r) => r.status === 'stored')).toHaveLength(1);
      expect(results.filter((r) => r.status === 'existed')).toHaveLength(5);
      expect(await lakeObjects(root)).toEqual([`${sha256(data).slice(0, 2)}/${sha256(data).slice(2)}`]);
      await Promise.all(writers.map((w) => w.close()));
    });

    it('makes the .tmp and blob folders a lake lacks (config.yml written by hand)', async () => {
      const root = `${sshd.root}/bare`;
      mkdirSync(root, { recursive: true });
      writeFileSync(join(root, 'config.yml'), 'levels:\n- 1\n- -1\n');
      spawnSync('chown', ['-R', `${sshd.username}:`, root]);
      const storage = new HashKeyStorage(location(root));
      const key = await storage.write(Buffer.from('into a bare lake'));
      expect(readFileSync(blobPath(root, key), 'utf8')).toBe('into a bare lake');
      expect(readdirSync(join(root, '.tmp'))).toEqual([]);
      await storage.close();
    });

    it('an abort while the host hangs mid-write rejects at once with AbortError, and no blob appears', async () => {
      const root = `${sshd.root}/abort`;
      const storage = new HashKeyStorage(location(root));
      await storage.write(Buffer.from('lake exists'));
      const data = pseudoRandom('sftp abort', 2048);
      const thaw = freezeSessions(sshd);
      const controller = new AbortController();
      const started = Date.now();
      try {
        const writing = storage.put(data, { signal: controller.signal }).catch((e: unknown) => e);
        setTimeout(() => controller.abort(new Error('user cancelled')), 300);
        expect(await writing).toBeInstanceOf(AbortError);
        expect(Date.now() - started).toBeLessThan(5000);
      } finally {
        thaw();
      }
      // Whatever the thawed host still runs of it, the blob never appears (at most a temp file).
      await new Promise((r) => setTimeout(r, 500));
      expect(() => statSync(blobPath(root, sha256(data)))).toThrow();
      expect(await storage.write(Buffer.from('after the abort'))).toBe(sha256('after the abort'));
      await storage.close();
    });
  },
);

describe.runIf(available('sshd'))('SCP downloads (straight from the channel to the file)', () => {
  let sshd: Sshd;
  beforeAll(async () => {
    sshd = await startSshd();
  });
  afterAll(() => sshd?.stop());
  const location = (root: string, transferTimeoutMs?: number) =>
    new SCPLocation('127.0.0.1', root, {
      port: sshd.port,
      username: sshd.username,
      privateKeyPath: sshd.privateKeyPath,
      hostKeyFingerprint: sshd.hostKeyFingerprint,
      transferTimeoutMs,
    });
  /** This process's download temp files (other test files run in other processes). */
  const ours = () =>
    readdirSync(tmpdir()).filter((f) => f.startsWith('tarn-scp-') && f.includes(`-${process.pid}-`));

  it('reads values of every size up to several MiB byte for byte (a value ending inside a packet, or in the header’s)', async () => {
    const root = `${sshd.root}/sizes`;
    const storage = new HashKeyStorage(location(root));
    for (const size of [0, 1, 2, 32 << 10, (32 << 10) + 1, (2 << 20) + 3, 7 << 20]) {
      const data = pseudoRandom(`scp size ${size}`, size);
      const key = await storage.write(data);
      expect((await storage.read(key, (v) => v.bytes(), { verify: true })).equals(data)).toBe(true);
    }
    expect(ours()).toEqual([]);
    await storage.close();
  }, 60_000);

  it('a host that stops sending mid-download fails the read after transferTimeoutMs and leaves no local copy', async () => {
    const root = `${sshd.root}/stall`;
    const storage = new HashKeyStorage(location(root, 2000));
    const data = pseudoRandom('scp stall', 64 << 20);
    const key = await storage.write(data);
    for (const f of ours()) rmSync(join(tmpdir(), f), { force: true });
    const reading = storage.read(key, (v) => v.bytes()).catch((e: unknown) => e);
    // Frozen once the download has begun to land in its local temp file.
    const landing = () => ours().some((f) => statSync(join(tmpdir(), f), { throwIfNoEntry: false })?.size);
    while (!landing()) await new Promise((r) => setTimeout(r, 2));
    const thaw = freezeSessions(sshd);
    try {
      const error = await reading;
      expect(error).toBeInstanceOf(RemoteError);
      expect((error as Error).message).toMatch(/no progress for 2000 ms/);
    } finally {
      thaw();
    }
    expect(ours()).toEqual([]);
    await storage.close();
  }, 60_000);
});
