import { readFile, stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { parseArgs } from 'node:util';
import { fromConfigFile } from '../config/load.js';
import { ConfigError, IoError, isSystemError, RefusedError, SourceError, statusOf } from '../errors.js';
import { DiskLocation } from '../location/disk/index.js';
import { HashKeyStorage } from '../storage.js';
import { formatSize } from '../util/size.js';
import { describeStorage, formatDescription } from './describe.js';
import { EXIT, UsageError } from './exit-codes.js';
import { saveTo, toStdout } from './output.js';
import { Progress } from './progress.js';
import { loadSidecar, SERVE_OPTIONS, serveFlagsOf } from './serve.js';
import { stdinWasClosed } from './stdin.js';

const USAGE = `usage: tarn [--storage <dir|config.yml>] [--json] <command> [args]

commands:
  init <dir>            create a lake (--levels 1,-1 --max-size 500G --min-free 10G --algorithm sha256)
  put <file|-> ...      store files, FIFOs or stdin (-) and print their keys (--expect <key>)
  get <key> [-o file]   write a value to a file (replaced atomically; a FIFO or device is written
                        through, a symlink followed) or to stdout (--verify)
  cat <key>             write a value to stdout (--verify)
  has <key>             exit 0 if stored, 3 if not
  rm <key>              delete a value (exit 3 if it was not stored)
  ls                    list every key
  verify                re-hash every value, quarantine corrupt ones, sweep stale temp files
  describe              print the location tree and whether each location answers (exit 1 if one does not)
  serve                 serve the storage over HTTP on a Unix socket until SIGTERM (needs @tarnjs/sidecar):
                        --config tarn.yaml (reloaded when it changes) or the storage as above (a lake
                        is created), --socket <path> (default ./.tarn/tarn.sock, or the config's),
                        --metrics-port <n> [--metrics-host <addr>] (Prometheus), --allow-delete,
                        --hot-cache <size> (memory for hot small values, default 32MiB, 0: none),
                        --ingest-root <dir> (repeatable: a shared folder whose files clients may
                        store by path, POST /v1/blobs/ingest);
                        where it listens and a curl line go to stderr, JSON logs to stdout

The storage is --storage, else $TARN_STORAGE, else ./.tarn: a lake folder, or a config file
(.yml, .yaml, .json). --json prints results as JSON lines, and an error as {"error":{...}} on stderr.
Exit codes: 0 ok, 1 error, 2 usage or invalid key, 3 not found, 4 corrupt, 5 refused (full),
6 config, 7 key mismatch or collision, 130 interrupted.`;

interface Io {
  stdout: NodeJS.WritableStream & { isTTY?: boolean };
  stderr: NodeJS.WriteStream;
  stdin: NodeJS.ReadableStream;
  env: NodeJS.ProcessEnv;
  signal: AbortSignal;
}

const OPTIONS = {
  json: { type: 'boolean' },
  output: { type: 'string', short: 'o' },
  expect: { type: 'string' },
  verify: { type: 'boolean' },
  levels: { type: 'string' },
  'max-size': { type: 'string' },
  'min-free': { type: 'string' },
  algorithm: { type: 'string' },
  ...SERVE_OPTIONS,
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean' },
} as const;

export async function main(argv: string[], io: Io): Promise<number> {
  let parsed: ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true }>>;
  try {
    parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true });
  } catch (e) {
    // The flags did not parse, so --json is looked for by hand.
    return report(new UsageError((e as Error).message), io.stderr, argv.includes('--json'));
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
        if (args.includes('-') && io.stdin === process.stdin && stdinWasClosed()) {
          throw new SourceError(
            'stdin is closed; give `tarn put -` a file or a pipe on stdin, or name the files to put',
          );
        }
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
            if (target && target !== '-') await saveTo(value, target, io.stderr, signal);
            else await toStdout(value, io.stdout, io.stderr, signal);
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
            `corrupt: ${c.key} in ${c.where} (hashes to ${c.actual})${c.quarantinedTo ? ` -> ${c.quarantinedTo}` : ''}${c.notMoved ? `; left in place: ${c.notMoved}` : ''}\n`,
          );
        }
        for (const f of report.foreign)
          io.stderr.write(`foreign: ${f.path} (${f.reason}): not a value, never read; left in place\n`);
        for (const f of report.failed)
          io.stderr.write(`not verified: ${f.where}${f.key ? ` ${f.key}` : ''}: ${f.message}\n`);
        const foreign = report.foreign.length > 0 ? `, ${report.foreign.length} foreign` : '';
        out(
          `${report.checked} values, ${formatSize(report.bytes)} checked, ${report.corrupt.length} corrupt${foreign}`,
          report,
        );
        // A link or a device where a value belongs is damage to the lake, as a corrupt blob is.
        if (report.corrupt.length > 0 || report.foreign.length > 0) return EXIT.corrupt;
        return report.failed.length > 0 ? EXIT.error : EXIT.ok;
      }
      case 'describe': {
        if (args.length > 0)
          throw new UsageError('describe takes no arguments; name the storage with --storage');
        if (!(await stat(spec).catch(() => undefined))) mustNotBeAConfigFile(spec);
        const d = await describeStorage(spec);
        out(formatDescription(d), d);
        return d.reachable ? EXIT.ok : EXIT.error;
      }
      case 'serve': {
        if (args.length > 0) throw new UsageError('serve takes flags only (tarn --help lists them)');
        const flags = serveFlagsOf(opts);
        const sidecar = await loadSidecar();
        return await sidecar.serve({ ...flags, cwd: process.cwd(), env: io.env, stderr: io.stderr, signal });
      }
      default:
        throw new UsageError(`unknown command ${JSON.stringify(command)}`);
    }
  } catch (e) {
    if (e instanceof RefusedError) await e.discard();
    return report(e, io.stderr, opts.json ?? false);
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
  if (!st) mustNotBeAConfigFile(spec);
  return new HashKeyStorage(new DiskLocation(spec, { create }));
}

/**
 * A storage that does not exist and is named like a config file is a config file that is missing
 * (a typo, the wrong folder), not a lake to create under that name.
 */
function mustNotBeAConfigFile(spec: string): void {
  if (/\.(ya?ml|json)$/i.test(spec))
    throw new ConfigError(`the config file ${spec} does not exist; check --storage or $TARN_STORAGE`);
}

/**
 * Prints an error and gives the exit status. An expected condition (a TarnError, an OS error, an
 * abort) is one line, `tarn: <message>`; a bug keeps its stack. With --json it is one JSON object
 * on stderr instead: `{"error":{"code","message"}}`, plus `errno` and `path` for an OS error and
 * `stack` for a bug.
 */
function report(thrown: unknown, stderr: NodeJS.WritableStream, json: boolean): number {
  const e = isSystemError(thrown) ? IoError.from(thrown) : thrown;
  const status = statusOf(e);
  const aborted = status.code === 'TARN_ABORTED';
  const message = aborted
    ? 'interrupted; nothing partial was stored'
    : e instanceof Error
      ? e.message
      : String(e);
  if (json) {
    const error: Record<string, unknown> = { code: status.code, message };
    if (e instanceof IoError) Object.assign(error, { errno: e.errno, path: e.path });
    if (!status.expected) error.stack = (e as Error)?.stack;
    stderr.write(`${JSON.stringify({ error })}\n`);
  } else {
    stderr.write(`tarn: ${status.expected ? message : ((e as Error)?.stack ?? message)}\n`);
    if (e instanceof UsageError) stderr.write(`${USAGE}\n`);
  }
  return status.exit;
}
