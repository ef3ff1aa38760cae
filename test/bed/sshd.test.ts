import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { available, binary } from './index.js';
import { type Sshd, startSshd } from './services.js';

const run = promisify(execFile);

describe.runIf(available('sshd'))('bed: OpenSSH sshd', () => {
  let sshd: Sshd;
  const local = mkdtempSync(join(tmpdir(), 'bed-ssh-local-'));
  beforeAll(async () => {
    sshd = await startSshd();
  });
  afterAll(() => sshd?.stop());

  it('round-trips a file with sftp', async () => {
    writeFileSync(join(local, 'up.bin'), 'over sftp');
    const batch = join(local, 'batch');
    writeFileSync(
      batch,
      `put ${join(local, 'up.bin')} ${sshd.root}/up.bin\nget ${sshd.root}/up.bin ${join(local, 'down.bin')}\n`,
    );
    await run(binary('sftp'), [
      ...sshd.clientOptions,
      '-P',
      String(sshd.port),
      '-b',
      batch,
      `${sshd.username}@127.0.0.1`,
    ]);
    expect(readFileSync(join(local, 'down.bin'), 'utf8')).toBe('over sftp');
  });

  it('round-trips a file with scp', async () => {
    writeFileSync(join(local, 'scp.bin'), 'over scp');
    const remote = `${sshd.username}@127.0.0.1:${sshd.root}/scp.bin`;
    await run(binary('scp'), [
      ...sshd.clientOptions,
      '-P',
      String(sshd.port),
      join(local, 'scp.bin'),
      remote,
    ]);
    await run(binary('scp'), [
      ...sshd.clientOptions,
      '-P',
      String(sshd.port),
      remote,
      join(local, 'scp-back.bin'),
    ]);
    expect(readFileSync(join(local, 'scp-back.bin'), 'utf8')).toBe('over scp');
  });

  it('is reachable only with the pinned host key', async () => {
    expect(sshd.hostKeyFingerprint).toMatch(/^SHA256:/);
    const wrong = join(local, 'wrong_known_hosts');
    writeFileSync(
      wrong,
      `[127.0.0.1]:${sshd.port} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n`,
    );
    const options = sshd.clientOptions.map((o) =>
      o.startsWith('UserKnownHostsFile=') ? `UserKnownHostsFile=${wrong}` : o,
    );
    await expect(
      run(binary('ssh'), [...options, '-p', String(sshd.port), `${sshd.username}@127.0.0.1`, 'true']),
    ).rejects.toThrow(/HOST IDENTIFICATION HAS CHANGED|Host key verification failed/);
  });
});
