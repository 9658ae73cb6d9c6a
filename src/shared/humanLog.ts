/**
 * The head's and agent's log lines for a person at a terminal: `12:04:05 INFO  head: listening
 * url=http://127.0.0.1:8265`. The same records as the JSON lines (which a service manager or a
 * file gets), only written for reading.
 */
import fs from 'node:fs';

const LEVELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
const COLORS: Record<number, string> = { 40: '\x1b[33m', 50: '\x1b[31m', 60: '\x1b[31m' };
const SKIP = new Set(['level', 'time', 'pid', 'hostname', 'name', 'msg', 'v']);

function value(v: unknown): string {
  if (typeof v === 'string') return /[\s"=]/.test(v) || v === '' ? JSON.stringify(v) : v;
  if (v && typeof v === 'object' && 'message' in v && typeof v.message === 'string') return JSON.stringify((v as { message: string }).message);
  return JSON.stringify(v) ?? String(v);
}

/** One JSON log record as a human line (a line that is not JSON is passed through). */
export function humanLine(json: string, color: boolean): string {
  let r: Record<string, unknown>;
  try {
    r = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json.endsWith('\n') ? json : json + '\n';
  }
  const level = typeof r.level === 'number' ? r.level : 30;
  const time = new Date(typeof r.time === 'number' ? r.time : Date.now()).toTimeString().slice(0, 8);
  const label = (LEVELS[level] ?? String(level)).padEnd(5);
  const paint = color && COLORS[level] ? (s: string): string => `${COLORS[level]}${s}\x1b[0m` : (s: string): string => s;
  const fields = Object.entries(r)
    .filter(([k]) => !SKIP.has(k))
    .map(([k, v]) => `${k}=${value(v)}`)
    .join(' ');
  const name = typeof r.name === 'string' ? `${r.name}: ` : '';
  return `${time} ${paint(label)} ${name}${typeof r.msg === 'string' ? r.msg : ''}${fields ? ` ${fields}` : ''}\n`;
}

/** A pino destination that writes human lines to a terminal's fd, synchronously. */
export function humanDestination(fd: number, color: boolean): { write(line: string): void } {
  return {
    write(line: string): void {
      try {
        fs.writeSync(fd, humanLine(line.trimEnd(), color));
      } catch {
        // a closed terminal: nothing to tell it
      }
    },
  };
}
