import { createHash, createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { homedir, userInfo } from 'node:os';
import { join } from 'node:path';
import type { ConnectConfig } from 'ssh2';
import { ConfigError } from '../../errors.js';

/** How to reach and trust an SSH host; shared by the SFTP and SCP locations. */
export interface SshOptions {
  port?: number;
  /** Default: the local user name. */
  username?: string;
  /** A private key file (OpenSSH format). Without a key, the agent at $SSH_AUTH_SOCK is used. */
  privateKeyPath?: string;
  privateKey?: string | Buffer;
  passphrase?: string;
  agent?: string;
  /** known_hosts file to verify the server's host key against (default ~/.ssh/known_hosts). */
  knownHostsPath?: string;
  /** Or pin the host key: `SHA256:…` as `ssh-keygen -l` prints it. */
  hostKeyFingerprint?: string;
  /** Connection (handshake) timeout; default 10 s. */
  readyTimeoutMs?: number;
  /** Connections kept open and shared by all operations (default 2). */
  connections?: number;
}

export function fingerprintOf(key: Buffer): string {
  return `SHA256:${createHash('sha256').update(key).digest('base64').replace(/=+$/, '')}`;
}

/** The names a known_hosts line may use for this host. */
function hostNames(host: string, port: number): string[] {
  return port === 22 ? [host, `[${host}]:22`] : [`[${host}]:${port}`];
}

function lineMatches(pattern: string, names: string[]): boolean {
  if (pattern.startsWith('|1|')) {
    const [, , salt, hash] = pattern.split('|');
    return names.some(
      (n) =>
        createHmac('sha1', Buffer.from(salt ?? '', 'base64'))
          .update(n)
          .digest('base64') === hash,
    );
  }
  return names.includes(pattern);
}

/**
 * A host key check that never accepts an unknown key: the key must be the pinned fingerprint, or
 * be listed for this host in known_hosts (plain or hashed entries). `reason` says why a key was refused.
 */
export function hostKeyCheck(host: string, port: number, options: SshOptions) {
  let reason = '';
  const verify = (key: Buffer): boolean => {
    const got = fingerprintOf(key);
    if (options.hostKeyFingerprint) {
      if (got === options.hostKeyFingerprint) return true;
      reason = `host key ${got} is not the pinned ${options.hostKeyFingerprint}`;
      return false;
    }
    const file = options.knownHostsPath ?? join(homedir(), '.ssh', 'known_hosts');
    let text = '';
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      reason = `no known_hosts file at ${file}; pass knownHostsPath or hostKeyFingerprint`;
      return false;
    }
    const names = hostNames(host, port);
    const blob = key.toString('base64');
    let listed = false;
    for (const line of text.split('\n')) {
      const fields = line.trim().split(/\s+/);
      if (fields.length < 3 || line.startsWith('#') || line.startsWith('@')) continue;
      const [patterns, , base64] = fields as [string, string, string];
      if (!patterns.split(',').some((p) => lineMatches(p, names))) continue;
      listed = true;
      if (base64 === blob) return true;
    }
    reason = listed
      ? `host key ${got} does not match ${file} (the host's key changed, or this is not the host you think)`
      : `${names[0]} is not in ${file}; add it (ssh-keyscan -p ${port} ${host}) or pin hostKeyFingerprint`;
    return false;
  };
  return { verify, reason: () => reason };
}

export function connectConfig(
  host: string,
  options: SshOptions,
  verify: (key: Buffer) => boolean,
): ConnectConfig {
  let privateKey = options.privateKey;
  if (privateKey === undefined && options.privateKeyPath) {
    try {
      privateKey = readFileSync(options.privateKeyPath);
    } catch (e) {
      throw new ConfigError(
        `cannot read the private key ${options.privateKeyPath}: ${(e as Error).message}`,
        ['privateKeyPath'],
      );
    }
  }
  return {
    host,
    port: options.port ?? 22,
    username: options.username ?? userInfo().username,
    privateKey,
    passphrase: options.passphrase,
    agent: privateKey ? undefined : (options.agent ?? process.env.SSH_AUTH_SOCK),
    hostVerifier: verify,
    readyTimeout: options.readyTimeoutMs ?? 10_000,
    keepaliveInterval: 15_000,
  };
}

/** Quotes a path for a POSIX shell. */
export const shq = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** The config.yml of a new lake on a host: Python tarn's default layout, as `tarn init` writes it. */
export const DEFAULT_LAKE_CONFIG = 'levels:\n- 1\n- -1\n';

/** `user@host:port:/root`, for messages. */
export function sshTarget(host: string, root: string, options: SshOptions): string {
  return `${options.username ? `${options.username}@` : ''}${host}${options.port ? `:${options.port}` : ''}:${root}`;
}
