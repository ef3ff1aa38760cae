import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { HashKeyStorage, RemoteError, SFTPLocation } from '@tarnjs/tarn';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { available } from '../../../bed/index.js';
import { type Sshd, startSshd } from '../../../bed/services.js';
import { sha256 } from '../../../helpers/data.js';
import { lakeObjects } from '../../../helpers/lake.js';
import { py, pythonTarn } from '../../../helpers/python.js';
import { conformance } from '../conformance.js';

conformance(
  'sftp',
  async () => {
    const sshd = await startSshd();
    const root = `${sshd.root}/lake`;
    const location = new SFTPLocation('127.0.0.1', root, {
      port: sshd.port,
      username: sshd.username,
      privateKeyPath: sshd.privateKeyPath,
      knownHostsPath: sshd.knownHostsPath,
    });
    // The "remote" host is this machine: its lake is read behind the location's back.
    return { location, objects: async () => lakeObjects(root), server: sshd, teardown: () => sshd.stop() };
  },
  { remote: true, enabled: available('sshd') },
);

describe.runIf(available('sshd'))('SFTP location', () => {
  let sshd: Sshd;
  beforeAll(async () => {
    sshd = await startSshd();
  });
  afterAll(() => sshd?.stop());
  const options = () => ({ port: sshd.port, username: sshd.username, privateKeyPath: sshd.privateKeyPath });

  it('writes a lake that is a plain Python-tarn lake on the host', async () => {
    const root = `${sshd.root}/plain`;
    const storage = new HashKeyStorage(
      new SFTPLocation('127.0.0.1', root, { ...options(), knownHostsPath: sshd.knownHostsPath }),
    );
    const key = await storage.write(Buffer.from('over sftp'));
    expect(readFileSync(join(root, 'config.yml'), 'utf8')).toBe('levels:\n- 1\n- -1\n');
    expect(readFileSync(join(root, key.slice(0, 2), key.slice(2)), 'utf8')).toBe('over sftp');
    if (pythonTarn())
      expect(await py([{ op: 'read', root, key }])).toEqual([Buffer.from('over sftp').toString('base64')]);
    await storage.close();
  });

  it('accepts a pinned fingerprint instead of known_hosts', async () => {
    const location = new SFTPLocation('127.0.0.1', `${sshd.root}/pinned`, {
      ...options(),
      hostKeyFingerprint: sshd.hostKeyFingerprint,
    });
    expect(await location.contains(sha256('x'))).toBe(false);
    await location.close();
  });

  it('never accepts an unknown or wrong host key', async () => {
    const wrongPin = new SFTPLocation('127.0.0.1', sshd.root, {
      ...options(),
      hostKeyFingerprint: 'SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
    });
    const err = await wrongPin.contains(sha256('x')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RemoteError);
    expect((err as Error).message).toMatch(/is not the pinned/);
    const unknown = new SFTPLocation('127.0.0.1', sshd.root, { ...options(), knownHostsPath: '/dev/null' });
    await expect(unknown.contains(sha256('x'))).rejects.toThrow(/is not in \/dev\/null/);
  });

  it('names the host when the server is down or the key is wrong', async () => {
    const down = new SFTPLocation('127.0.0.1', '/x', {
      port: 9,
      privateKeyPath: sshd.privateKeyPath,
      hostKeyFingerprint: sshd.hostKeyFingerprint,
      readyTimeoutMs: 2000,
    });
    await expect(down.contains(sha256('x'))).rejects.toThrow(/127\.0\.0\.1:9/);
    const wrongKey = new SFTPLocation('127.0.0.1', sshd.root, {
      port: sshd.port,
      username: sshd.username,
      privateKeyPath: join(sshd.root, '..', 'host_ed25519'),
      hostKeyFingerprint: sshd.hostKeyFingerprint,
    });
    await expect(wrongKey.contains(sha256('x'))).rejects.toThrow(
      /127\.0\.0\.1:\d+.*authentication|All configured authentication methods failed/i,
    );
  });
});
