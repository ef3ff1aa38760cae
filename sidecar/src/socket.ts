import { execFile } from 'node:child_process';
import { lstatSync, unlinkSync } from 'node:fs';
import { chmod, chown, lstat, mkdir, readFile, unlink } from 'node:fs/promises';
import type { Server } from 'node:http';
import { connect } from 'node:net';
import { dirname } from 'node:path';
import { ConfigError, IoError, isSystemError, SocketInUseError } from '@tarnjs/tarn';

/**
 * The longest socket path the kernel takes (sun_path is 108 bytes on Linux, 104 on macOS, with the
 * terminating NUL); a longer one fails at bind with an obscure EINVAL, so it is refused up front.
 */
const MAX_SOCKET_PATH = process.platform === 'linux' ? 107 : 103;

/** What a probe of a socket path found. */
type Probe = 'free' | 'stale';

/**
 * Makes `path` ready to be bound: its folder exists; a socket file nobody answers on (a server that
 * died) is removed; a live server on it is refused (SocketInUseError) and left alone; anything that
 * is not a socket (a file, a folder, a link) is refused (ConfigError) and never deleted.
 */
export async function prepareSocket(path: string, signal?: AbortSignal): Promise<void> {
  if (Buffer.byteLength(path) > MAX_SOCKET_PATH) {
    throw new ConfigError(
      `the socket path ${path} is ${Buffer.byteLength(path)} bytes long, over the ${MAX_SOCKET_PATH} a Unix socket may have; choose a shorter one (--socket)`,
    );
  }
  try {
    await mkdir(dirname(path), { recursive: true });
  } catch (e) {
    throw isSystemError(e) ? IoError.from(e, { what: `the socket's folder ${dirname(path)}` }) : e;
  }
  if ((await probe(path, signal)) === 'stale') {
    try {
      await unlink(path);
    } catch (e) {
      // Someone else removed it first: that is what we wanted.
      if (!(isSystemError(e) && e.code === 'ENOENT')) throw isSystemError(e) ? IoError.from(e) : e;
    }
  }
}

async function probe(path: string, signal?: AbortSignal): Promise<Probe> {
  let st: Awaited<ReturnType<typeof lstat>>;
  try {
    st = await lstat(path);
  } catch (e) {
    if (isSystemError(e) && e.code === 'ENOENT') return 'free';
    throw isSystemError(e) ? IoError.from(e, { what: `the socket path ${path}` }) : e;
  }
  if (!st.isSocket()) {
    const what = st.isSymbolicLink() ? 'a symbolic link' : st.isDirectory() ? 'a folder' : 'not a socket';
    throw new ConfigError(
      `the socket path ${path} is ${what}; it is left as it is: remove it yourself, or choose another path (--socket)`,
    );
  }
  // A socket file: live if something accepts a connection on it, stale if nothing does.
  return new Promise<Probe>((resolve, reject) => {
    const s = connect({ path, signal });
    s.once('connect', () => {
      s.destroy();
      reject(new SocketInUseError(path));
    });
    s.once('error', (e: NodeJS.ErrnoException) => {
      s.destroy();
      if (e.code === 'ECONNREFUSED') resolve('stale');
      else reject(isSystemError(e) ? IoError.from(e, { verb: 'connect to', what: path }) : e);
    });
  });
}

/** A group by name (from /etc/group, then NSS through `getent`) or by number. */
export async function gidOf(group: string | number): Promise<number> {
  if (typeof group === 'number') return group;
  if (/^\d+$/.test(group)) return Number(group);
  const fromFile = await readFile('/etc/group', 'utf8').then(
    (text) => {
      for (const line of text.split('\n')) {
        const [name, , gid] = line.split(':');
        if (name === group && gid !== undefined && /^\d+$/.test(gid)) return Number(gid);
      }
      return undefined;
    },
    () => undefined,
  );
  if (fromFile !== undefined) return fromFile;
  const fromNss = await new Promise<number | undefined>((resolve) => {
    execFile('getent', ['group', group], { timeout: 5000 }, (error, stdout) => {
      const gid = error ? undefined : stdout.split(':')[2];
      resolve(gid !== undefined && /^\d+$/.test(gid) ? Number(gid) : undefined);
    });
  });
  if (fromNss !== undefined) return fromNss;
  throw new ConfigError(`no group is named ${JSON.stringify(group)} on this machine; give its gid instead`, [
    'serve',
    'socketGroup',
  ]);
}

/**
 * Binds `server` to the socket at `path` with exactly `mode` and `group`. The socket is created
 * with the umask set so that it is never more open than `mode`, not even between bind and chmod:
 * Node binds a path synchronously inside `listen()`, so the umask is changed for that call alone
 * (no other file of the process is created meanwhile). `listen` is what starts the server (fastify's
 * `listen`, which calls `server.listen`).
 */
export async function listenOnSocket(
  server: Server,
  path: string,
  mode: number,
  group: string | number | undefined,
  listen: () => Promise<unknown>,
  /** Called once the socket exists, before its mode and group are set (so that a failure there removes it). */
  onBound: (bound: SocketIdentity) => void,
): Promise<void> {
  const gid = group === undefined ? undefined : await gidOf(group);
  const original = server.listen;
  // Mask every bit `mode` does not grant; bind creates the socket as 0777 & ~umask. With a group to
  // give, the group's bits too until the socket has it: until the chown it belongs to this
  // process's own group, whose members must not get in meanwhile.
  const mask = ~(gid === undefined ? mode : mode & 0o700) & 0o777;
  server.listen = function (this: Server, ...args: Parameters<Server['listen']>) {
    server.listen = original;
    const previous = process.umask(mask);
    try {
      return original.apply(this, args);
    } finally {
      process.umask(previous);
    }
  } as Server['listen'];
  try {
    await listen();
  } finally {
    server.listen = original;
  }
  const bound = socketIdentity(path);
  if (bound) onBound(bound);
  try {
    // The group first, then the mode: the group's bits open only to the right group. (The umask
    // cannot add bits, a mode with setgid say: chmod makes it exact.)
    if (gid !== undefined) await chown(path, -1, gid);
    await chmod(path, mode);
  } catch (e) {
    throw isSystemError(e)
      ? IoError.from(e, {
          hint:
            e.syscall === 'chown'
              ? `this process (uid ${process.getuid?.()}) must be root or a member of the group ${group} to give it the socket`
              : undefined,
        })
      : e;
  }
}

export interface SocketIdentity {
  readonly dev: number;
  readonly ino: number;
}

/** Which socket file is at `path` now: what `removeSocketSync` checks before it unlinks. */
export function socketIdentity(path: string): SocketIdentity | undefined {
  try {
    const st = lstatSync(path);
    return st.isSocket() ? { dev: st.dev, ino: st.ino } : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Removes the socket this process bound, synchronously (it runs in exit handlers), and only if the
 * file at `path` is still that socket: another server started since on the same path keeps its own.
 */
export function removeSocketSync(path: string, bound: SocketIdentity): void {
  const now = socketIdentity(path);
  if (!now || now.dev !== bound.dev || now.ino !== bound.ino) return;
  try {
    unlinkSync(path);
  } catch {
    // already gone (libuv unlinks a pipe server's path when it closes)
  }
}
