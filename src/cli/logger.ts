import { type Logger, pino } from 'pino';
import pretty from 'pino-pretty';
import type { LOG_FORMATS, LOG_LEVELS } from '../config/schema.js';

export type LogLevel = (typeof LOG_LEVELS)[number];
export type LogFormat = (typeof LOG_FORMATS)[number];

/**
 * The server's log on stdout: JSON lines (one per request, plus events) for collectors, or
 * readable lines on a terminal. `auto` picks pretty when stdout is a terminal.
 */
export function createLogger(level: LogLevel, format: LogFormat): Logger {
  const options = {
    name: 'moonbit-registry',
    level,
    // Nothing logs request headers today; should anything ever, credentials stay out.
    redact: { paths: ['authorization', '*.authorization', '*.headers.authorization'], censor: '***' },
  };
  const readable = format === 'pretty' || (format === 'auto' && process.stdout.isTTY === true);
  if (!readable) return pino(options);
  return pino(
    options,
    pretty({
      colorize: process.stdout.isTTY === true,
      sync: true,
      translateTime: 'SYS:HH:MM:ss.l',
      ignore: 'pid,hostname,name',
      messageFormat: readableLine,
      hideObject: true,
    }),
  );
}

const BASE_KEYS = new Set(['level', 'time', 'pid', 'hostname', 'name', 'msg']);

/** One line per entry: `GET /user/... 200 3ms client=...` for requests, else the message and its fields. */
function readableLine(log: Record<string, unknown>): string {
  const rest = Object.entries(log).filter(([key]) => !BASE_KEYS.has(key));
  if (log.msg === 'request') {
    const { method, url, status, ms, ...others } = Object.fromEntries(rest);
    const extra = Object.entries(others).map(([k, v]) => `${k}=${String(v)}`);
    return [String(method), String(url), String(status), `${String(ms)}ms`, ...extra].join(' ');
  }
  const fields = rest.map(([key, value]) => {
    const shown =
      value instanceof Object
        ? JSON.stringify((value as { message?: unknown }).message ?? value)
        : String(value);
    return `${key}=${shown}`;
  });
  return [String(log.msg ?? ''), ...fields].join(' ');
}
