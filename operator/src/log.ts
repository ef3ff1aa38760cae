/** JSON lines on stdout, one per event, as the sidecar logs: what a cluster's log pipeline reads. */
export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

const LEVELS = { debug: 20, info: 30, warn: 40, error: 50 } as const;
export type Level = keyof typeof LEVELS;

export function jsonLogger(level: Level = 'info', out: NodeJS.WritableStream = process.stdout): Logger {
  const min = LEVELS[level];
  const line = (l: Level) => (msg: string, fields?: Record<string, unknown>) => {
    if (LEVELS[l] < min) return;
    out.write(`${JSON.stringify({ level: l, time: new Date().toISOString(), msg, ...fields })}\n`);
  };
  return { debug: line('debug'), info: line('info'), warn: line('warn'), error: line('error') };
}

export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };
