import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
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
/** The bed's login user when run as root (created once by scripts/provision.sh, or here). */
function bedUser(): { name: string; uid: number; gid: number } {
  const name = 'tarnbed';
  const lookup = () => spawnSync('getent', ['passwd', name], { encoding: 'utf8' }).stdout.trim();
  let line = lookup();
  if (!line) {
    // Two test files may race to create it; useradd's failure then is harmless.
    spawnSync('useradd', [
      '--system',
      '--shell',
      '/bin/sh',
      '--home-dir',
      '/nonexistent',
      '--no-create-home',
      '--password',
      '*',
      name,
    ]);
    line = lookup();
  }
  if (!line) throw new Error(`cannot create the test bed's ssh user ${name} (useradd failed)`);
  const [, , uid, gid] = line.split(':');
  return { name, uid: Number(uid), gid: Number(gid) };
}

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
  const me = userInfo();
  // As root, the bed logs in as its own user whose login shell is /bin/sh: commands then run
  // without the machine's ~/.bashrc (whose slow or locking init, like pyenv's rehash, would stall
  // every command, and which a killed session must not be able to wedge).
  const user = me.uid === 0 ? bedUser() : { name: me.username, uid: me.uid, gid: me.gid };
  const root = join(dir, 'remote');
  mkdirSync(root);
  chmodSync(dir, 0o755);
  chownSync(root, user.uid, user.gid);
  // sshd reads authorized_keys as the user logging in.
  chownSync(authorized, user.uid, user.gid);
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
      `AllowUsers ${user.name}`,
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
    // Every session lives in a tree of processes below the listener (privileged child, user child,
    // subsystem): all of them die at once, as on a host that goes away.
    const tree = (pid: string): string[] => {
      const children = spawnSync('pgrep', ['-P', pid]).stdout.toString().split('\n').filter(Boolean);
      return [pid, ...children.flatMap(tree)];
    };
    const listener = readFileSync(join(dir, 'sshd.pid'), 'utf8').trim();
    const sessions = tree(listener).slice(1);
    if (sessions.length > 0) spawnSync('kill', ['-KILL', ...sessions]);
    await service.stop();
  };
  return {
    ...service,
    crash,
    host: '127.0.0.1',
    port,
    username: user.name,
    privateKeyPath: userKey,
    knownHostsPath: knownHosts,
    hostKeyFingerprint: fingerprint,
    root,
    clientOptions: clientOptions(userKey, knownHosts),
  };
}

/** Options for OpenSSH's ssh/scp/sftp: this key only, this host key only, never a prompt. */
export function clientOptions(userKey: string, knownHosts: string): string[] {
  return [
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
  ];
}
