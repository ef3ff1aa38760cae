import { statusOf } from '@tarnjs/tarn';
import { type DestinationStream, type Logger, type LoggerOptions, pino } from 'pino';

const LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LEVELS)[number];

/** Query parameters whose values are never logged (presigned URLs, tokens pasted by hand). */
const SECRET_PARAM = /token|secret|passw|signature|credential|auth|session|api[-_]?key|^sig$|^key$/i;

/**
 * A request's URL as logged: the path as is, the value of any query parameter that may carry a
 * secret replaced. The API's own parameters (`expect`, `verify`, `limit`, `after`) carry none.
 */
export function redactUrl(url: string): string {
  const q = url.indexOf('?');
  if (q < 0) return url;
  const params = url
    .slice(q + 1)
    .split('&')
    .map((part) => {
      const eq = part.indexOf('=');
      const name = eq < 0 ? part : part.slice(0, eq);
      let decoded = name;
      try {
        decoded = decodeURIComponent(name);
      } catch {
        // a malformed escape: match on the raw name
      }
      return eq >= 0 && SECRET_PARAM.test(decoded) ? `${name}=[redacted]` : part;
    });
  return `${url.slice(0, q)}?${params.join('&')}`;
}

interface LoggedRequest {
  method?: string;
  url?: string;
  ip?: string;
  id?: string;
}

/** The level from `TARN_LOG_LEVEL` (default info); an unknown name is refused rather than guessed. */
export function logLevelOf(env: Readonly<Record<string, string | undefined>>): LogLevel {
  const raw = env.TARN_LOG_LEVEL?.trim().toLowerCase();
  if (!raw) return 'info';
  if ((LEVELS as readonly string[]).includes(raw)) return raw as LogLevel;
  throw new Error(`TARN_LOG_LEVEL=${raw} is not one of ${LEVELS.join(', ')}`);
}

/**
 * The sidecar's logger: one JSON object per line, on `destination` (stdout by default). Requests
 * are logged by method, URL (secrets in its query redacted) and id, never by body or header; an
 * expected error (a TarnError: a missing key, a bad config) is logged by code and message without a
 * stack, a bug with its stack.
 */
export function createLogger(
  options: { level?: LogLevel; destination?: DestinationStream | NodeJS.WritableStream } = {},
): Logger {
  const config: LoggerOptions = {
    level: options.level ?? 'info',
    base: { pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    serializers: {
      // Fastify's default serializers are replaced by these (a logger's own win).
      req: (req: LoggedRequest) => ({
        method: req.method,
        url: req.url === undefined ? undefined : redactUrl(req.url),
      }),
      res: (reply: { statusCode?: number }) => ({ statusCode: reply.statusCode }),
      err: (e: unknown) => {
        const status = statusOf(e);
        const message = e instanceof Error ? e.message : String(e);
        return status.expected
          ? { code: status.code, message }
          : { code: status.code, message, stack: e instanceof Error ? e.stack : undefined };
      },
    },
    // Belts and braces: should a header object or a secret field ever reach a log call, it is
    // censored rather than written.
    redact: {
      paths: [
        'headers',
        'req.headers',
        'request.headers',
        'authorization',
        '*.authorization',
        'password',
        '*.password',
        'secret',
        '*.secret',
        'secretAccessKey',
        '*.secretAccessKey',
        'token',
        '*.token',
        'body',
        '*.body',
      ],
      censor: '[redacted]',
    },
  };
  // Synchronous, as pino's default: a line is written when logged, so nothing is pending at exit.
  // An asynchronous destination flushes at exit with a loop that never ends when stdout's reader
  // has gone (EPIPE): the process would hang instead of exiting.
  return pino(config, (options.destination ?? pino.destination({ fd: 1, sync: true })) as DestinationStream);
}

/** What a child logger needs of its parent (pino's and fastify's loggers both have it). */
interface ParentLogger {
  child(bindings: Record<string, unknown>, options?: object): ParentLogger;
  isLevelEnabled?(level: string): boolean;
  level: string;
  fatal(...args: unknown[]): void;
  error(...args: unknown[]): void;
  warn(...args: unknown[]): void;
  info(...args: unknown[]): void;
  debug(...args: unknown[]): void;
  trace(...args: unknown[]): void;
}

/**
 * A request's child logger (bound to its request id), made the first time a line at an enabled
 * level is logged. Most requests log nothing, and a pino child per request (its bindings
 * serialised at creation) was 2% of a 1 KiB GET's time. One object per request, methods shared.
 */
class LazyChild {
  #child: ParentLogger | undefined;
  readonly #parent: ParentLogger;
  readonly #bindings: Record<string, unknown>;
  readonly #options: object;

  constructor(parent: ParentLogger, bindings: Record<string, unknown>, options: object) {
    this.#parent = parent;
    this.#bindings = bindings;
    this.#options = options;
  }

  #real(): ParentLogger {
    this.#child ??= this.#parent.child(this.#bindings, this.#options);
    return this.#child;
  }

  /** The child for a line at `level`, or undefined when that level is off (no child is made for it). */
  #at(level: string): ParentLogger | undefined {
    if (this.#child) return this.#child;
    return this.#parent.isLevelEnabled?.(level) === false ? undefined : this.#real();
  }

  get level(): string {
    return (this.#child ?? this.#parent).level;
  }
  set level(level: string) {
    this.#real().level = level;
  }
  isLevelEnabled(level: string): boolean {
    return (this.#child ?? this.#parent).isLevelEnabled?.(level) ?? true;
  }
  child(bindings: Record<string, unknown>, options?: object): ParentLogger {
    return this.#real().child(bindings, options);
  }
  fatal(...args: unknown[]): void {
    this.#at('fatal')?.fatal(...args);
  }
  error(...args: unknown[]): void {
    this.#at('error')?.error(...args);
  }
  warn(...args: unknown[]): void {
    this.#at('warn')?.warn(...args);
  }
  info(...args: unknown[]): void {
    this.#at('info')?.info(...args);
  }
  debug(...args: unknown[]): void {
    this.#at('debug')?.debug(...args);
  }
  trace(...args: unknown[]): void {
    this.#at('trace')?.trace(...args);
  }
  silent(): void {}
}

/** fastify's `childLoggerFactory`: see LazyChild. */
export function lazyChildLogger<L>(parent: L, bindings: Record<string, unknown>, options: object): L {
  return new LazyChild(parent as unknown as ParentLogger, bindings, options) as unknown as L;
}
