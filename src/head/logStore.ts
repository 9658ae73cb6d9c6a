import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import type { LogStream } from '../shared/protocol/index.js';

export interface LogSegment {
  stream: LogStream;
  data: Buffer;
}

interface StreamRange {
  offset: number;
  length: number;
  stream: LogStream;
}

const CACHE_LIMIT = 512;

/**
 * Per-task log files under `logs/<job-id>/<task-index>.log`. The file is the truth: appends are
 * addressed by absolute position, so a resent chunk is never written twice and a gap is never
 * papered over. Output that is not stdout is recorded as ranges in a `.streams` side file so
 * readers can colour stderr and raysub's own lines.
 */
export class LogStore extends EventEmitter {
  private readonly sizes = new Map<string, number>();
  private readonly ranges = new Map<string, StreamRange[]>();

  constructor(private readonly dir: string) {
    super();
    this.setMaxListeners(0);
    fs.mkdirSync(dir, { recursive: true });
  }

  private key(jobId: string, idx: number): string {
    return `${jobId}/${idx}`;
  }

  logPath(jobId: string, idx: number): string {
    return path.join(this.dir, jobId, `${idx}.log`);
  }

  private streamsPath(jobId: string, idx: number): string {
    return path.join(this.dir, jobId, `${idx}.streams`);
  }

  private remember<T>(map: Map<string, T>, key: string, value: T): void {
    map.delete(key);
    map.set(key, value);
    if (map.size > CACHE_LIMIT) map.delete(map.keys().next().value as string);
  }

  size(jobId: string, idx: number): number {
    const key = this.key(jobId, idx);
    const cached = this.sizes.get(key);
    if (cached !== undefined) return cached;
    let size: number;
    try {
      size = fs.statSync(this.logPath(jobId, idx)).size;
    } catch {
      size = 0;
    }
    this.remember(this.sizes, key, size);
    return size;
  }

  /**
   * Write `data` so that it starts at absolute position `at`. Bytes the file already holds are
   * skipped; a chunk starting past the end is refused. Returns the file's size afterwards.
   */
  appendAt(jobId: string, idx: number, at: number, data: Buffer, stream: LogStream): number {
    const size = this.size(jobId, idx);
    if (at > size || at + data.length <= size) return size;
    return this.write(jobId, idx, size, data.subarray(size - at), stream);
  }

  /** Append one of raysub's own lines (between attempts, never inside one). */
  appendSystem(jobId: string, idx: number, text: string): number {
    const line = text.endsWith('\n') ? text : text + '\n';
    return this.write(jobId, idx, this.size(jobId, idx), Buffer.from(line), 'system');
  }

  private write(jobId: string, idx: number, at: number, data: Buffer, stream: LogStream): number {
    if (data.length === 0) return at;
    fs.mkdirSync(path.join(this.dir, jobId), { recursive: true });
    const fd = fs.openSync(this.logPath(jobId, idx), 'a');
    try {
      fs.writeSync(fd, data);
    } finally {
      fs.closeSync(fd);
    }
    if (stream !== 'stdout') {
      fs.appendFileSync(this.streamsPath(jobId, idx), `${at} ${data.length} ${stream}\n`);
      const list = this.ranges.get(this.key(jobId, idx));
      if (list) this.addRange(list, { offset: at, length: data.length, stream });
    }
    const size = at + data.length;
    this.remember(this.sizes, this.key(jobId, idx), size);
    this.emit('append', jobId, idx);
    return size;
  }

  private addRange(list: StreamRange[], r: StreamRange): void {
    const last = list[list.length - 1];
    if (last && last.stream === r.stream && last.offset + last.length === r.offset) last.length += r.length;
    else list.push(r);
  }

  private streamRanges(jobId: string, idx: number): StreamRange[] {
    const key = this.key(jobId, idx);
    const cached = this.ranges.get(key);
    if (cached) return cached;
    const list: StreamRange[] = [];
    let text: string;
    try {
      text = fs.readFileSync(this.streamsPath(jobId, idx), 'utf8');
    } catch {
      text = '';
    }
    for (const line of text.split('\n')) {
      const [o, l, s] = line.split(' ');
      if (o === undefined || l === undefined || (s !== 'stderr' && s !== 'system')) continue;
      this.addRange(list, { offset: Number(o), length: Number(l), stream: s });
    }
    this.remember(this.ranges, key, list);
    return list;
  }

  /** Read bytes [from, from + max) of a task's log, split by stream. */
  read(jobId: string, idx: number, from: number, max = 1 << 20): LogSegment[] {
    const size = this.size(jobId, idx);
    const end = Math.min(size, from + max);
    if (end <= from) return [];
    const buf = Buffer.alloc(end - from);
    const fd = fs.openSync(this.logPath(jobId, idx), 'r');
    try {
      fs.readSync(fd, buf, 0, buf.length, from);
    } finally {
      fs.closeSync(fd);
    }
    const segments: LogSegment[] = [];
    let pos = from;
    for (const r of this.streamRanges(jobId, idx)) {
      if (r.offset + r.length <= pos || r.offset >= end) continue;
      if (r.offset > pos) segments.push({ stream: 'stdout', data: buf.subarray(pos - from, r.offset - from) });
      const rEnd = Math.min(end, r.offset + r.length);
      const rStart = Math.max(pos, r.offset);
      segments.push({ stream: r.stream, data: buf.subarray(rStart - from, rEnd - from) });
      pos = rEnd;
    }
    if (pos < end) segments.push({ stream: 'stdout', data: buf.subarray(pos - from) });
    return segments;
  }

  readAll(jobId: string, idx: number): Buffer {
    try {
      return fs.readFileSync(this.logPath(jobId, idx));
    } catch {
      return Buffer.alloc(0);
    }
  }

  removeJob(jobId: string): void {
    for (const map of [this.sizes, this.ranges]) {
      for (const key of [...map.keys()]) if (key.startsWith(`${jobId}/`)) map.delete(key);
    }
    fs.rmSync(path.join(this.dir, jobId), { recursive: true, force: true });
  }
}
