import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { HashKeyStorage, RemoteError, SCPLocation } from '@tarnjs/tarn';
import { Client } from 'ssh2';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { available } from '../../../bed/index.js';
import { type Sshd, startSshd } from '../../../bed/services.js';
import { sha256 } from '../../../helpers/data.js';
import { lakeObjects } from '../../../helpers/lake.js';
import { conformance } from '../conformance.js';

conformance(
  'scp',
  async () => {
    const sshd = await startSshd();
    const root = `${sshd.root}/lake`;
    const location = new SCPLocation('127.0.0.1', root, {
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

describe.runIf(available('sshd'))('SCP location', () => {
  let sshd: Sshd;
  beforeAll(async () => {
    sshd = await startSshd();
  });
  afterAll(() => sshd?.stop());

  it('writes a plain lake on the host, read back over one reused connection', async () => {
    const root = `${sshd.root}/plain`;
    const location = new SCPLocation('127.0.0.1', root, {
      port: sshd.port,
      username: sshd.username,
      privateKeyPath: sshd.privateKeyPath,
      hostKeyFingerprint: sshd.hostKeyFingerprint,
      connections: 1,
    });
    const storage = new HashKeyStorage(location);
    const keys = [];
    for (let i = 0; i < 5; i++) keys.push(await storage.write(Buffer.from(`scp value ${i}`)));
    for (const [i, key] of keys.entries()) {
      expect(readFileSync(join(root, key.slice(0, 2), key.slice(2)), 'utf8')).toBe(`scp value ${i}`);
      expect(await storage.read(key, (v) => v.text())).toBe(`scp value ${i}`);
    }
    // Every operation above went through one SSH connection: sshd logged a single accepted login.
    const logins = readFileSync(sshd.log, 'utf8').match(/Accepted publickey/g) ?? [];
    expect(logins).toHaveLength(1);
    await storage.close();
  });

  it("reads Python tarn's legacy <key>/data layout, a hit otherwise costing one channel", async () => {
    const root = `${sshd.root}/legacy`;
    const location = new SCPLocation('127.0.0.1', root, {
      port: sshd.port,
      username: sshd.username,
      privateKeyPath: sshd.privateKeyPath,
      hostKeyFingerprint: sshd.hostKeyFingerprint,
    });
    const storage = new HashKeyStorage(location);
    const plain = await storage.write(Buffer.from('plain'));
    const key = sha256('legacy value');
    const folder = join(root, key.slice(0, 2), key.slice(2));
    mkdirSync(folder, { recursive: true });
    writeFileSync(join(folder, 'data'), 'legacy value');
    // Channels are counted where the library opens them (ssh2's exec, one per remote command);
    // the lake's config.yml was fetched by the write above, once.
    const exec = vi.spyOn(Client.prototype, 'exec');
    try {
      const commands = async (work: () => Promise<unknown>) => {
        exec.mockClear();
        await work();
        return exec.mock.calls.map((c) => String(c[0]).split(' ').slice(0, 2).join(' '));
      };
      expect(await commands(() => storage.read(plain, (v) => v.text()))).toEqual(['scp -f']);
      let text: string | undefined;
      expect(
        await commands(async () => {
          text = await storage.read(key, (v) => v.text(), { verify: true });
        }),
      ).toEqual(['scp -f', 'scp -f']);
      expect(text).toBe('legacy value');
      expect(await commands(() => storage.readOrNull(sha256('absent')))).toEqual(['scp -f']);
    } finally {
      exec.mockRestore();
    }
    await storage.close();
  });

  it('refuses a host key it cannot verify', async () => {
    const location = new SCPLocation('127.0.0.1', sshd.root, {
      port: sshd.port,
      username: sshd.username,
      privateKeyPath: sshd.privateKeyPath,
      knownHostsPath: '/dev/null',
    });
    const err = await location.contains(sha256('x')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RemoteError);
    expect((err as Error).message).toMatch(/not in \/dev\/null/);
  });
});
