/**
 * Where a log read starts when the reader asks for the last N lines (`tail`) or for what was
 * captured since a time (`since`): a byte offset per task, always at the start of a line.
 */
import fs from 'node:fs';
import type { LogStore } from './logStore.js';
import { firstOffsetSince } from './logTimes.js';

const BLOCK = 64 * 1024;

export interface StartOptions {
  /** The last this many lines of each task. */
  tail?: number;
  /** What was captured at or after this time (ms since the epoch). */
  since?: number;
}

/** Read the byte at `pos` of a file (null: none). */
function byteAt(fd: number, pos: number): number | null {
  const buf = Buffer.alloc(1);
  return fs.readSync(fd, buf, 0, 1, pos) === 1 ? (buf[0] as number) : null;
}

/** Offset of the first line of the last `lines` lines of the file's first `size` bytes. */
function tailOffset(fd: number, size: number, lines: number): number {
  if (lines <= 0) return size;
  // A last line without its newline yet is a line too; a final newline ends the last line.
  let end = size;
  if (end > 0 && byteAt(fd, end - 1) === 0x0a) end -= 1;
  let seen = 0;
  const buf = Buffer.alloc(BLOCK);
  for (let pos = end; pos > 0; ) {
    const from = Math.max(0, pos - BLOCK);
    const got = fs.readSync(fd, buf, 0, pos - from, from);
    for (let i = got - 1; i >= 0; i--) {
      if (buf[i] === 0x0a && ++seen === lines) return from + i + 1;
    }
    pos = from;
  }
  return 0;
}

/** The first line start at or after `offset`. */
function lineStartFrom(fd: number, size: number, offset: number): number {
  if (offset <= 0) return 0;
  if (byteAt(fd, offset - 1) === 0x0a) return offset;
  const buf = Buffer.alloc(BLOCK);
  for (let pos = offset; pos < size; ) {
    const got = fs.readSync(fd, buf, 0, Math.min(BLOCK, size - pos), pos);
    if (got <= 0) break;
    const nl = buf.subarray(0, got).indexOf(0x0a);
    if (nl >= 0) return pos + nl + 1;
    pos += got;
  }
  return size;
}

/** Where to start reading one task's log for `opts` (0 when it asks for neither). */
export function startOffset(logs: LogStore, jobId: string, idx: number, opts: StartOptions): number {
  if (opts.tail === undefined && opts.since === undefined) return 0;
  const size = logs.size(jobId, idx);
  if (size === 0) return 0;
  let fd: number;
  try {
    fd = fs.openSync(logs.logPath(jobId, idx), 'r');
  } catch {
    return 0;
  }
  try {
    let start = 0;
    if (opts.since !== undefined) {
      const at = firstOffsetSince(logs.timeMarks(jobId, idx), opts.since);
      start = at === null ? size : lineStartFrom(fd, size, at);
    }
    if (opts.tail !== undefined) start = Math.max(start, tailOffset(fd, size, opts.tail));
    return start;
  } finally {
    fs.closeSync(fd);
  }
}
