import { pino, type Logger } from 'pino';
import type { LogLevel } from './config.js';

export type { Logger };

/** Structured JSON lines for head and agent; `destination` is a file path, or stderr. */
export function createLogger(name: string, level: LogLevel, destination?: string): Logger {
  const dest = destination ? pino.destination({ dest: destination, mkdir: true, sync: false }) : pino.destination(2);
  return pino({ name, level, base: { pid: process.pid } }, dest);
}

export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
