import { parseArgs } from 'node:util';
import { IoError, isSystemError, SERVE_OPTIONS, serveFlagsOf, statusOf, UsageError } from '@tarnjs/tarn';
import { probe } from './probe.js';
import { serve } from './serve.js';

const USAGE = `usage: tarn-sidecar [--config tarn.yaml | --storage <dir>] [--socket <path>]
                    [--metrics-port <n> [--metrics-host <addr>]] [--allow-delete]
                    [--hot-cache <size>] [--ingest-root <dir>]...
       tarn-sidecar probe --socket <path>

The same server as \`tarn serve\` (see \`tarn --help\`): the storage over HTTP on a Unix socket,
until SIGTERM. Where it listens and a curl line go to stderr; JSON logs (TARN_LOG_LEVEL) to stdout.
\`probe\` exits 0 when the sidecar on the socket is ready (GET /readyz), else 1: the pod's exec probe.`;

interface Io {
  stderr: NodeJS.WriteStream;
  env: NodeJS.ProcessEnv;
}

/** The image's entrypoint: parses the flags of `tarn serve`, serves, returns the exit status. */
export async function sidecarMain(argv: string[], io: Io): Promise<number> {
  if (argv[0] === 'probe') {
    const { values } = parseArgs({
      args: argv.slice(1),
      options: { socket: { type: 'string' } },
      strict: false,
    });
    const socket = typeof values.socket === 'string' ? values.socket : (io.env.TARN_SIDECAR ?? '');
    if (!socket) {
      io.stderr.write('tarn-sidecar probe: give --socket <path> (or $TARN_SIDECAR)\n');
      return 2;
    }
    const answer = await probe(socket);
    if (!answer.ok) io.stderr.write(`tarn-sidecar probe: ${answer.why}\n`);
    return answer.ok ? 0 : 1;
  }
  try {
    const { values, positionals } = parseArgs({
      args: argv,
      options: { ...SERVE_OPTIONS, help: { type: 'boolean', short: 'h' } },
      allowPositionals: true,
    });
    if (values.help) {
      process.stdout.write(`${USAGE}\n`);
      return 0;
    }
    if (positionals.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(positionals[0])}`);
    return await serve({ ...serveFlagsOf(values), cwd: process.cwd(), env: io.env, stderr: io.stderr });
  } catch (thrown) {
    const e = isSystemError(thrown) ? IoError.from(thrown) : thrown;
    const status = statusOf(e);
    const message = e instanceof Error ? e.message : String(e);
    io.stderr.write(`tarn-sidecar: ${status.expected ? message : ((e as Error)?.stack ?? message)}\n`);
    if (e instanceof UsageError || (e as { code?: string })?.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION')
      io.stderr.write(`${USAGE}\n`);
    return (e as { code?: string })?.code?.startsWith('ERR_PARSE_ARGS') ? 2 : status.exit;
  }
}
