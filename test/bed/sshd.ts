import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { binary, freePort, probe, type Service, startService } from './index.js';

export interface Sshd extends Service {
  readonly host: '127.0.0.1';
  readonly port: number;
  readonly username: string;
  /** The client's private key (ed25519, no passphrase) and a known_hosts file that pins the server. */
  readonly privateKeyPath: string;
  readonly knownHostsPath: string;
  /** The server's host key fingerprint as `ssh-keygen -l` prints it: `SHA256:...`. */
  readonly hostKeyFingerprint: string;
  /** A folder on the "remote" side for the tests to use as a lake root. */
  readonly root: string;
  /** ssh/scp/sftp options that reach this server with the client key and pinned host key. */
  readonly clientOptions: string[];
  /** The host going away: the listener and every open session die at once (stop() spares sessions). */
  crash(): Promise<void>;
}

/**
 * Debian's OpenSSH sshd in the foreground on a loopback port, with a throwaway host key, a client
 * key pair, public-key auth only, and the SFTP subsystem; `scp` works through it too.
 */
export async function startSshd(dir = mkdtempSync(join(tmpdir(), 'bed-sshd-'))): Promise<Sshd> {
  const port = await freePort();
  const keygen = binary('ssh-keygen');
  const hostKey = join(dir, 'host_ed25519');
  const userKey = join(dir, 'client_ed25519');
  execFileSync(keygen, ['-q', '-t', 'ed25519', '-N', '', '-C', 'bed-host', '-f', hostKey]);
  execFileSync(keygen, ['-q', '-t', 'ed25519', '-N', '', '-C', 'bed-client', '-f', userKey]);
  const authorized = join(dir, 'authorized_keys');
  writeFileSync(authorized, readFileSync(`${userKey}.pub`));
  chmodSync(authorized, 0o600);
  const knownHosts = join(dir, 'known_hosts');
  const [type, key] = readFileSync(`${hostKey}.pub`, 'utf8').split(' ');
  writeFileSync(knownHosts, `[127.0.0.1]:${port} ${type} ${key}\n`);
  const fingerprint = execFileSync(keygen, ['-l', '-E', 'sha256', '-f', `${hostKey}.pub`])
    .toString()
    .split(' ')[1] as string;
  const root = join(dir, 'remote');
  mkdirSync(root);
  const me = userInfo();
  // sshd insists on its privilege-separation folder when started as root.
  if (me.uid === 0) mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  const config = join(dir, 'sshd_config');
  writeFileSync(
    config,
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${hostKey}`,
      `PidFile ${join(dir, 'sshd.pid')}`,
      `AuthorizedKeysFile ${authorized}`,
      'PubkeyAuthentication yes',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      'StrictModes no',
      `AllowUsers ${me.username}`,
      me.uid === 0 ? 'PermitRootLogin prohibit-password' : '',
      'Subsystem sftp internal-sftp',
      'LogLevel VERBOSE',
      '',
    ].join('\n'),
  );
  const command = [binary('sshd'), '-D', '-e', '-f', config];
  const service = await startService({
    name: 'sshd',
    command,
    dir,
    ready: () => probe(port, undefined, /^SSH-2\.0-/),
  });
  const crash = async () => {
    const pid = readFileSync(join(dir, 'sshd.pid'), 'utf8').trim();
    // Per-connection processes are the listener's children; killing them drops every session.
    spawnSync('pkill', ['-KILL', '-P', pid]);
    await service.stop();
  };
  return {
    ...service,
    crash,
    host: '127.0.0.1',
    port,
    username: me.username,
    privateKeyPath: userKey,
    knownHostsPath: knownHosts,
    hostKeyFingerprint: fingerprint,
    root,
    clientOptions: [
      '-i',
      userKey,
      '-o',
      `UserKnownHostsFile=${knownHosts}`,
      '-o',
      'StrictHostKeyChecking=yes',
      '-o',
      'BatchMode=yes',
      '-o',
      'IdentitiesOnly=yes',
    ],
  };
}
