import { createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import type { Readable } from 'node:stream';
import type { Client, ClientChannel } from 'ssh2';
import { AbortError, throwIfAborted } from '../../errors.js';
import { CHUNK } from '../../util/chunks.js';
import { Lazy } from '../../util/lazy.js';
import { ownedName } from '../../util/process.js';
import { FileValue } from '../../value.js';
import type { CommitResult, Location, OpOptions, Stage, StageOptions, Value } from '../contract.js';
import { CONFIG_NAME, type LakeConfig, parseLakeConfig } from '../disk/config.js';
import { isComponent, keyToParts } from '../disk/layout.js';
import { remoteError } from '../remote-error.js';
import { type Spool, SpoolStage } from '../spool.js';
import {
  connectConfig,
  DEFAULT_LAKE_CONFIG,
  hostKeyCheck,
  type SshOptions,
  shq,
  sshTarget,
} from './options.js';
import { ConnectionPool } from './pool.js';

/** An scp transfer failed in the protocol itself (the remote scp said no). */
class ScpRefusal extends Error {}

/**
 * A lake on an SSH host, moved with the scp protocol over reused SSH connections (for hosts that
 * offer scp but no SFTP subsystem). Values travel by `scp -t` / `scp -f`; the few other operations
 * (existence, rename without replacing, delete, listing) are POSIX shell commands over the same
 * connection. Same layout as a local lake.
 */
export interface SCPOptions extends SshOptions {
  /** Any step of a transfer or command that makes no progress for this long fails (default 30 s). */
  transferTimeoutMs?: number;
}

/** The program a shell command runs, for messages. */
function verb(command: string): string {
  return command.split(' ')[0] ?? 'exec';
}

/** Rejects when `promise` has not settled within `ms`: a host that vanished silently cannot hang us. */
function bounded<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no progress for ${ms} ms while ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export class SCPLocation implements Location {
  readonly kind = 'scp';
  readonly target: string;
  readonly #host: string;
  readonly #root: string;
  readonly #options: SCPOptions;
  readonly #wait: number;
  readonly #pool: ConnectionPool<Client>;
  readonly #lake = new Lazy<LakeConfig>();

  constructor(host: string, root: string, options: SCPOptions = {}) {
    this.#wait = options.transferTimeoutMs ?? 30_000;
    this.#host = host;
    this.#root = posix.resolve('/', root);
    this.#options = options;
    this.#pool = new ConnectionPool(
      options.connections ?? 2,
      (drop) => this.#connect(drop),
      (c) => c.end(),
    );
    this.target = sshTarget(host, this.#root, options);
  }

  async #connect(drop: () => void): Promise<Client> {
    const { Client: SshClient } = await import('ssh2');
    const client = new SshClient();
    const check = hostKeyCheck(this.#host, this.#options.port ?? 22, this.#options);
    const config = connectConfig(this.#host, this.#options, check.verify);
    await new Promise<void>((resolve, reject) => {
      client.once('ready', () => resolve());
      client.once('error', (e) => reject(check.reason() ? new Error(check.reason(), { cause: e }) : e));
      client.connect(config);
    });
    client.on('error', drop);
    client.on('close', drop);
    return client;
  }

  /**
   * A command channel; like every step of a transfer, starting it is bounded by transferTimeoutMs.
   * An abort of `signal` closes it, so every wait on it fails at once.
   */
  async #channel(command: string, signal?: AbortSignal): Promise<ClientChannel> {
    const { client } = await this.#pool.get();
    const ch = await bounded(
      new Promise<ClientChannel>((resolve, reject) =>
        client.exec(command, (err, c) => (err ? reject(err) : resolve(c))),
      ),
      this.#wait,
      `starting ${verb(command)}`,
    );
    // When the connection dies its channels may not say so themselves: close them, so every wait
    // on them fails at once instead of at the timeout.
    const gone = () => ch.emit('close');
    client.once('close', gone);
    signal?.addEventListener('abort', gone, { once: true });
    ch.once('close', () => {
      client.off('close', gone);
      signal?.removeEventListener('abort', gone);
    });
    if (signal?.aborted) gone();
    return ch;
  }

  /** Runs a shell command on the host; its exit code and output. */
  async #sh(command: string, options?: OpOptions): Promise<{ code: number; out: string; err: string }> {
    throwIfAborted(options?.signal);
    try {
      const ch = await this.#channel(command, options?.signal);
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      // Bounded by progress, not total time: a long listing that keeps sending output is fine.
      const code = await new Promise<number>((resolve, reject) => {
        let timer: NodeJS.Timeout | undefined;
        const idle = () => {
          clearTimeout(timer);
          timer = setTimeout(() => {
            ch.close();
            reject(new Error(`no progress for ${this.#wait} ms while running ${verb(command)}`));
          }, this.#wait);
        };
        idle();
        ch.on('data', (d: Buffer) => {
          out.push(d);
          idle();
        });
        ch.stderr.on('data', (d: Buffer) => {
          err.push(d);
          idle();
        });
        ch.on('close', (c: number | null) => {
          clearTimeout(timer);
          if (options?.signal?.aborted) reject(new AbortError(options.signal.reason));
          else resolve(c ?? -1);
        });
      });
      return { code, out: Buffer.concat(out).toString(), err: Buffer.concat(err).toString() };
    } catch (e) {
      throw remoteError(`scp ${this.target}`, verb(command), e, options?.signal);
    }
  }

  async #config(options?: OpOptions): Promise<LakeConfig> {
    const file = `${this.#root}/${CONFIG_NAME}`;
    return this.#lake.get(async () => {
      // Create the lake as Python tarn would when it has no config.yml; another writer may win the race.
      const tmp = `${this.#root}/.tmp/${ownedName('config')}`;
      const r = await this.#sh(
        `mkdir -p ${shq(`${this.#root}/.tmp`)} && if [ ! -e ${shq(file)} ]; then printf %s ${shq(DEFAULT_LAKE_CONFIG)} > ${shq(tmp)} && ` +
          `{ ln ${shq(tmp)} ${shq(file)} 2>/dev/null; rm -f ${shq(tmp)}; }; fi; cat ${shq(file)}`,
        options,
      );
      if (r.code !== 0) throw remoteError(`scp ${this.target}`, 'read config.yml', new Error(r.err.trim()));
      return parseLakeConfig(r.out, `${this.target}/${CONFIG_NAME}`);
    });
  }

  async #path(key: string, options?: OpOptions): Promise<string> {
    keyToParts(key, [1, -1]); // validate before any request
    return `${this.#root}/${keyToParts(key, (await this.#config(options)).levels).join('/')}`;
  }

  /**
   * scp -f: the remote side sends `C<mode> <size> <name>\n`, the bytes, then a zero byte.
   * `missing` and `folder` are the remote scp's refusals for no file and a directory.
   */
  async #download(remote: string, local: string, options?: OpOptions): Promise<'ok' | 'missing' | 'folder'> {
    throwIfAborted(options?.signal);
    let ch: ClientChannel;
    try {
      ch = await this.#channel(`scp -f ${shq(remote)}`, options?.signal);
    } catch (e) {
      throw remoteError(`scp ${this.target}`, 'scp -f', e, options?.signal);
    }
    // 1 MiB of buffer in the file stream: the channel hands over 32 KiB packets, and a smaller
    // high-water mark would pause it after nearly every one.
    const out = createWriteStream(local, { mode: 0o600, highWaterMark: CHUNK });
    try {
      await receive(ch, out, this.#wait);
      return 'ok';
    } catch (e) {
      if (e instanceof ScpRefusal && /No such file/i.test(e.message)) return 'missing';
      if (e instanceof ScpRefusal && /not a regular file/i.test(e.message)) return 'folder';
      throw remoteError(`scp ${this.target}`, `scp -f ${remote}`, e, options?.signal);
    } finally {
      out.destroy();
      ch.close();
    }
  }

  async read(key: string, options?: OpOptions): Promise<Value | null> {
    const path = await this.#path(key, options);
    const local = join(tmpdir(), ownedName('tarn-scp'));
    // One channel for a hit; a folder is Python tarn's legacy <key>/data, fetched with a second.
    let got: 'ok' | 'missing' | 'folder';
    try {
      got = await this.#download(path, local, options);
      if (got === 'folder') got = await this.#download(`${path}/data`, local, options);
    } catch (e) {
      // A download that failed midway (a host gone, an abort) leaves no partial copy behind.
      await rm(local, { force: true });
      throw e;
    }
    if (got !== 'ok') {
      await rm(local, { force: true });
      return null;
    }
    return FileValue.open(local, () => rm(local, { force: true }));
  }

  async stage(options: StageOptions = {}): Promise<Stage | null> {
    if (options.key !== undefined) await this.#path(options.key, options);
    return new SpoolStage((key, spool) => this.#publish(key, spool, options));
  }

  async #publish(key: string, spool: Spool, options: OpOptions): Promise<CommitResult> {
    const final = await this.#path(key, options);
    if ((await this.#sh(`test -e ${shq(final)}`, options)).code === 0) return { status: 'existed' };
    const name = ownedName('stage');
    const tmpDir = `${this.#root}/.tmp`;
    let ch: ClientChannel | undefined;
    try {
      ch = await this.#channel(`scp -t ${shq(tmpDir)}`, options.signal);
      await send(ch, name, spool.size, spool.stream(), this.#wait);
    } catch (e) {
      ch?.close();
      throw remoteError(`scp ${this.target}`, 'scp -t', e, options.signal);
    }
    // link(1) refuses to replace an existing blob; exactly one writer sees 'stored'.
    const tmp = `${tmpDir}/${name}`;
    const r = await this.#sh(
      `mkdir -p ${shq(posix.dirname(final))} && if ln ${shq(tmp)} ${shq(final)} 2>/dev/null; then s=stored; ` +
        `elif [ -e ${shq(final)} ]; then s=existed; else s=failed; fi; rm -f ${shq(tmp)}; echo $s`,
      options,
    );
    const status = r.out.trim();
    if (status === 'stored' || status === 'existed') return { status };
    throw remoteError(`scp ${this.target}`, 'publish', new Error(r.err.trim() || 'link failed'));
  }

  async contains(key: string, options?: OpOptions): Promise<boolean> {
    return (await this.#sh(`test -e ${shq(await this.#path(key, options))}`, options)).code === 0;
  }

  async delete(key: string, options?: OpOptions): Promise<boolean> {
    const p = shq(await this.#path(key, options));
    return (
      (await this.#sh(`if [ -e ${p} ]; then rm -rf ${p} && echo 1; else echo 0; fi`, options)).out.trim() ===
      '1'
    );
  }

  async touch(key: string, options?: OpOptions): Promise<boolean> {
    return this.contains(key, options);
  }

  async *keys(options?: OpOptions): AsyncIterable<string> {
    const { levels } = await this.#config(options);
    const r = await this.#sh(
      `cd ${shq(this.#root)} && find . -mindepth ${levels.length} -maxdepth ${levels.length}`,
      options,
    );
    for (const line of r.out.split('\n')) {
      const parts = line.replace(/^\.\//, '').split('/');
      if (parts.length === levels.length && parts.every((p, i) => isComponent(p, levels, i)))
        yield parts.join('');
    }
  }

  async close(): Promise<void> {
    await this.#pool.close();
  }
}

/** Reads one byte from the channel: 0 is OK, 1 and 2 carry a message (warning, error). */
async function ack(ch: ClientChannel, buffered: Buffer[], ms: number): Promise<void> {
  const byte = await readBytes(ch, buffered, 1, ms);
  if (byte[0] === 0) return;
  const line = await readLine(ch, buffered, ms);
  throw new ScpRefusal(line.trim());
}

/** The source side of scp -t: wait, announce, send, end with a zero byte. */
async function send(
  ch: ClientChannel,
  name: string,
  size: number,
  data: Readable,
  ms: number,
): Promise<void> {
  const buffered: Buffer[] = [];
  ch.on('data', (d: Buffer) => buffered.push(d));
  await ack(ch, buffered, ms);
  ch.write(`C0444 ${size} ${name}\n`);
  await ack(ch, buffered, ms);
  for await (const chunk of data) {
    if (!ch.write(chunk as Buffer)) await bounded(drained(ch), ms, 'sending');
  }
  ch.write(Buffer.from([0]));
  await ack(ch, buffered, ms);
  ch.end();
}

/**
 * The sink side of scp -f. The protocol's few control bytes go through `buffered`; the value's
 * bytes go straight from the channel to the file, each chunk as ssh2 hands it over (a slice at the
 * value's end), with backpressure: the channel is paused while the file is behind, so ssh2 stops
 * opening its window and the host stops sending. (Gathering them into 1 MiB pieces first copied
 * every byte at least once more and, with the channel running ahead, the whole backlog again on
 * every piece: downloads ran at a third of OpenSSH's scp.)
 */
async function receive(ch: ClientChannel, out: NodeJS.WritableStream, ms: number): Promise<void> {
  const buffered: Buffer[] = [];
  // While the value's bytes flow, every chunk goes to `payload`; control bytes before and after
  // it to `buffered`. One listener for both: a flowing channel with no 'data' listener drops data.
  let payload: ((d: Buffer) => void) | undefined;
  ch.on('data', (d: Buffer) => (payload ? payload(d) : buffered.push(d)));
  ch.write(Buffer.from([0]));
  const header = await readLine(ch, buffered, ms);
  if (header[0] === '\x01' || header[0] === '\x02') throw new ScpRefusal(header.slice(1).trim());
  const m = /^C[0-7]{4} (\d+) /.exec(header);
  if (!m) throw new Error(`unexpected scp header ${JSON.stringify(header)}`);
  const size = Number(m[1]);
  ch.write(Buffer.from([0]));
  await new Promise<void>((resolve, reject) => {
    let left = size;
    let timer: NodeJS.Timeout | undefined;
    const finish = (e?: Error) => {
      clearTimeout(timer);
      payload = undefined;
      ch.off('close', closed);
      out.off('error', finish);
      ch.resume();
      if (e) reject(e);
      else resolve();
    };
    const closed = () => finish(new Error('the scp channel closed during the transfer'));
    // Bounded by progress, as every step: a host that stops sending fails the read after `ms`.
    const idle = () => {
      clearTimeout(timer);
      timer = setTimeout(() => finish(new Error(`no progress for ${ms} ms while receiving`)), ms);
    };
    const take = (d: Buffer) => {
      idle();
      let chunk = d;
      if (chunk.byteLength > left) {
        // The value ends inside this chunk: the rest is the remote's closing status byte.
        buffered.push(chunk.subarray(left));
        chunk = chunk.subarray(0, left);
      }
      left -= chunk.byteLength;
      if (chunk.byteLength > 0 && !out.write(chunk)) {
        ch.pause();
        out.once('drain', () => ch.resume());
      }
      if (left === 0) finish();
    };
    ch.once('close', closed);
    out.once('error', finish);
    if (left === 0) return finish();
    idle();
    payload = take;
    // Bytes of the value that arrived with the header.
    for (const d of buffered.splice(0)) {
      if (payload) payload(d);
      else buffered.push(d);
    }
  });
  await ack(ch, buffered, ms);
  ch.write(Buffer.from([0]));
  await new Promise<void>((resolve, reject) => {
    out.end(() => resolve());
    out.once('error', reject);
  });
}

/** Takes `n` bytes (a status byte) from the buffered channel data. */
async function readBytes(ch: ClientChannel, buffered: Buffer[], n: number, ms: number): Promise<Buffer> {
  for (;;) {
    const have = buffered.reduce((a, b) => a + b.length, 0);
    if (have >= n) {
      const all = Buffer.concat(buffered);
      const take = Math.min(n, all.length);
      buffered.length = 0;
      if (all.length > take) buffered.push(all.subarray(take));
      return all.subarray(0, take);
    }
    await bounded(waitForData(ch), ms, 'waiting for scp');
  }
}

async function readLine(ch: ClientChannel, buffered: Buffer[], ms: number): Promise<string> {
  for (;;) {
    const all = Buffer.concat(buffered);
    const nl = all.indexOf(10);
    if (nl >= 0) {
      buffered.length = 0;
      if (all.length > nl + 1) buffered.push(all.subarray(nl + 1));
      return all.subarray(0, nl + 1).toString();
    }
    await bounded(waitForData(ch), ms, 'waiting for scp');
  }
}

/** Waits for the channel to take more bytes; a channel that closes instead (the host went away) fails. */
function drained(ch: ClientChannel): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (e?: Error) => {
      ch.off('drain', ok);
      ch.off('close', closed);
      ch.off('error', done);
      if (e) reject(e);
      else resolve();
    };
    const ok = () => done();
    const closed = () => done(new Error('the scp channel closed during the transfer'));
    ch.once('drain', ok);
    ch.once('close', closed);
    ch.once('error', done);
  });
}

function waitForData(ch: ClientChannel): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = () => {
      ch.off('data', done);
      ch.off('close', closed);
      resolve();
    };
    const closed = () => {
      ch.off('data', done);
      reject(new Error('the scp channel closed early'));
    };
    ch.once('data', done);
    ch.once('close', closed);
  });
}
