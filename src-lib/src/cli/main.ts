import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { copyFile, readFile, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import { fromConfigFile } from '../config/load.js';
import { AbortError, RefusedError, TarnError } from '../errors.js';
import { DiskLocation } from '../location/disk/index.js';
import { HashKeyStorage } from '../storage.js';
import type { StoredValue } from '../stored-value.js';
import { formatSize } from '../util/size.js';
import { describeStorage, formatDescription } from './describe.js';
import { EXIT, exitCodeOf, UsageError } from './exit-codes.js';
import { Progress } from './progress.js';

const USAGE = `usage: tarn [--storage <dir|config.yml>] [--json] <command> [args]

commands:
  init <dir>            create a lake (--levels 1,-1 --max-size 500G --min-free 10G --algorithm sha256)
  put <file|-> ...      store files (or stdin) and print their keys (--expect <key>)
  get <key> [-o file]   write a value to a file (atomically) or to stdout (--verify)
  cat <key>             write a value to stdout (--verify)
  has <key>             exit 0 if stored, 3 if not
  rm <key>              delete a value (exit 3 if it was not stored)
  ls                    list every key
  verify                re-hash every value, quarantine corrupt ones, sweep stale temp files
  describe              print the location tree and whether each location answers (exit 1 if one does not)

The storage is --storage, else $TARN_STORAGE, else ./.tarn: a lake folder, or a config file.
Exit codes: 0 ok, 1 error, 2 usage, 3 not found, 4 corrupt, 5 refused (full), 6 config, 7 key mismatch.`;

interface Io {
  stdout: NodeJS.WritableStream & { isTTY?: boolean };
  stderr: NodeJS.WriteStream;
  stdin: NodeJS.ReadableStream;
  env: NodeJS.ProcessEnv;
  signal: AbortSignal;
}

const OPTIONS = {
  storage: { type: 'string', short: 's' },
  json: { type: 'boolean' },
  output: { type: 'string', short: 'o' },
  expect: { type: 'string' },
  verify: { type: 'boolean' },
  levels: { type: 'string' },
  'max-size': { type: 'string' },
  'min-free': { type: 'string' },
  algorithm: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean' },
} as const;

export async function main(argv: string[], io: Io): Promise<number> {
  let parsed: ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true }>>;
  try {
    parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true });
  } catch (e) {
    io.stderr.write(`tarn: ${(e as Error).message}\n${USAGE}\n`);
    return EXIT.usage;
  }
  const { values: opts, positionals } = parsed;
  const [command, ...args] = positionals;
  if (opts.version) {
    const pkg = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8'));
    io.stdout.write(`${pkg.version}\n`);
    return EXIT.ok;
  }
  if (opts.help || !command) {
    (opts.help ? io.stdout : io.stderr).write(`${USAGE}\n`);
    return opts.help ? EXIT.ok : EXIT.usage;
  }
  const out = (human: string, json: unknown) => {
    io.stdout.write(opts.json ? `${JSON.stringify(json)}\n` : `${human}\n`);
  };
  const spec = opts.storage ?? io.env.TARN_STORAGE ?? './.tarn';
  const open = async (create = false) => openStorage(spec, create);
  const signal = io.signal;
  let storage: HashKeyStorage | undefined;
  try {
    switch (command) {
      case 'init': {
        const dir = one(args, 'init <dir>');
        const lake = new DiskLocation(dir, {
          levels: opts.levels?.split(',').map(Number),
          maxSize: opts['max-size'],
          minFreeSpace: opts['min-free'],
          algorithm: opts.algorithm,
        });
        const c = lake.config;
        const algorithm = c.digest?.name ?? 'sha256';
        out(`lake at ${lake.root} (levels ${JSON.stringify(c.levels)}, ${algorithm})`, {
          root: lake.root,
          levels: c.levels,
          algorithm,
          maxSize: c.maxSize ?? null,
          minFreeSpace: c.minFreeSpace,
        });
        return EXIT.ok;
      }
      case 'put': {
        if (args.length === 0)
          throw new UsageError('put <file|-> ...: name at least one file, or - for stdin');
        if (opts.expect && args.length > 1) throw new UsageError('--expect takes a single file');
        storage = await open(true);
        for (const file of args) {
          const size = file === '-' ? undefined : (await stat(file).catch(() => undefined))?.size;
          const bar = Progress.start(basename(file), size, io.stderr);
          let bytes = 0;
          const key = await storage.write(
            file === '-' ? (io.stdin as NodeJS.ReadableStream & AsyncIterable<Uint8Array>) : file,
            {
              expectedKey: opts.expect,
              signal,
              onProgress: (n) => {
                bytes = n;
                bar?.update(n);
              },
            },
          );
          bar?.done();
          out(args.length > 1 ? `${key}  ${file}` : key, { key, source: file, bytes });
        }
        return EXIT.ok;
      }
      case 'get':
      case 'cat': {
        const key = one(args, `${command} <key>`);
        storage = await open();
        const target = command === 'get' ? opts.output : undefined;
        await storage.read(
          key,
          async (value) => {
            if (target && target !== '-') await saveTo(value, target, io, signal);
            else await toStdout(value, io, signal);
          },
          { verify: opts.verify, signal },
        );
        return EXIT.ok;
      }
      case 'has': {
        const key = one(args, 'has <key>');
        storage = await open();
        const present = await storage.contains(key, { signal });
        if (opts.json) out('', { key, present });
        return present ? EXIT.ok : EXIT.notFound;
      }
      case 'rm': {
        const key = one(args, 'rm <key>');
        storage = await open();
        const removed = await storage.delete(key, { signal });
        if (opts.json) out('', { key, removed });
        else if (!removed) io.stderr.write(`tarn: ${key} was not stored\n`);
        return removed ? EXIT.ok : EXIT.notFound;
      }
      case 'ls': {
        storage = await open();
        for await (const key of storage.keys({ signal })) out(key, { key });
        return EXIT.ok;
      }
      case 'verify': {
        storage = await open();
        const bar = Progress.start('verify', undefined, io.stderr);
        const report = await storage.verify({ signal, onProgress: (n) => bar?.update(n) });
        bar?.done();
        for (const c of report.corrupt) {
          io.stderr.write(
            `corrupt: ${c.key} in ${c.where} (hashes to ${c.actual})${c.quarantinedTo ? ` -> ${c.quarantinedTo}` : ''}${c.error ? `; left in place: ${c.error}` : ''}\n`,
          );
        }
        for (const f of report.failed)
          io.stderr.write(`not verified: ${f.where}${f.key ? ` ${f.key}` : ''}: ${f.message}\n`);
        out(
          `${report.checked} values, ${formatSize(report.bytes)} checked, ${report.corrupt.length} corrupt`,
          report,
        );
        if (report.corrupt.length > 0) return EXIT.corrupt;
        return report.failed.length > 0 ? EXIT.error : EXIT.ok;
      }
      case 'describe': {
        if (args.length > 0)
          throw new UsageError('describe takes no arguments; name the storage with --storage');
        const d = await describeStorage(spec);
        out(formatDescription(d), d);
        return d.reachable ? EXIT.ok : EXIT.error;
      }
      default:
        throw new UsageError(`unknown command ${JSON.stringify(command)}`);
    }
  } catch (e) {
    if (e instanceof RefusedError) await e.discard();
    if (e instanceof AbortError) {
      io.stderr.write('tarn: interrupted; nothing partial was stored\n');
      return EXIT.interrupted;
    }
    const known = e instanceof TarnError || e instanceof UsageError;
    io.stderr.write(`tarn: ${known ? (e as Error).message : ((e as Error).stack ?? String(e))}\n`);
    if (e instanceof UsageError) io.stderr.write(`${USAGE}\n`);
    return exitCodeOf(e);
  } finally {
    await storage?.close();
  }
}

function one(args: string[], usage: string): string {
  if (args.length !== 1 || !args[0]) throw new UsageError(`expected ${usage}`);
  return args[0];
}

async function openStorage(spec: string, create: boolean): Promise<HashKeyStorage> {
  const st = await stat(spec).catch(() => undefined);
  // A config file says where its lakes are and whether to create them; a bare folder is only created on purpose.
  if (st?.isFile()) return fromConfigFile(spec);
  return new HashKeyStorage(new DiskLocation(spec, { create }));
}

/** Writes to a temp name beside the target, then renames: the target is never half-written. */
async function saveTo(value: StoredValue, target: string, io: Io, signal: AbortSignal): Promise<void> {
  const tmp = join(dirname(target), `.${basename(target)}.tarn-${randomBytes(4).toString('hex')}`);
  try {
    if (value.path) await copyFile(value.path, tmp);
    else await streamTo(value, createWriteStream(tmp), io, signal);
    await rename(tmp, target);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}

async function toStdout(value: StoredValue, io: Io, signal: AbortSignal): Promise<void> {
  try {
    await streamTo(value, io.stdout, io, signal);
  } catch (e) {
    // `tarn cat key | head` closes the pipe early: not an error.
    if ((e as NodeJS.ErrnoException).code !== 'EPIPE') throw e;
  }
}

async function streamTo(
  value: StoredValue,
  dest: NodeJS.WritableStream,
  io: Io,
  signal: AbortSignal,
): Promise<void> {
  const bar = Progress.start(value.key.slice(0, 12), value.size, io.stderr);
  const source = value.stream({ signal });
  if (bar) {
    let n = 0;
    source.on('data', (c: Buffer) => {
      n += c.byteLength;
      bar.update(n);
    });
  }
  await pipeline(source, dest);
  bar?.done();
}
