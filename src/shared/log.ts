import { pino, type Logger } from 'pino';
import { noColorFromEnv, type LogLevel } from './config.js';
import { humanDestination } from './humanLog.js';

export type { Logger };

/**
 * Structured JSON lines for head and agent; `destination` is a file path, or stderr. On a
 * terminal (a foreground `raysub start`) the same records are written as human lines instead.
 */
export function createLogger(name: string, level: LogLevel, destination?: string): Logger {
  if (!destination && process.stderr.isTTY) return pino({ name, level, base: { pid: process.pid } }, humanDestination(2, !noColorFromEnv()));
  const dest = destination ? pino.destination({ dest: destination, mkdir: true, sync: false }) : pino.destination(2);
  return pino({ name, level, base: { pid: process.pid } }, dest);
}

export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
