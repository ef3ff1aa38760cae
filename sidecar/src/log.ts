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
  return pino(config, (options.destination ?? pino.destination({ fd: 1, sync: false })) as DestinationStream);
}
