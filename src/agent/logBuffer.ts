import fs from 'node:fs';
import type { LogStream } from '../shared/protocol/index.js';

interface Segment {
  offset: number; // position in the attempt's output
  length: number;
  stream: LogStream;
  data: Buffer | null; // null: spilled to the spool file
  spoolAt: number;
  /** When the agent read the segment's first byte from the worker (ms since the epoch). */
  time: number;
}

export interface LogPiece {
  offset: number;
  stream: LogStream;
  data: Buffer;
  /** When the agent read the piece's first byte (a piece never spans two capture times). */
  time: number;
}

/** Output read within this long of a segment's first byte shares its capture time. */
const SAME_TIME_MS = 10;

/**
 * Output of one task attempt that the head has not acknowledged yet. Kept in memory up to a
 * bound, then spilled to a file in the agent's work dir, so a long head outage loses nothing.
 */
export class LogBuffer {
  private segments: Segment[] = [];
  private memoryBytes = 0;
  private spoolFd: number | null = null;
  private spoolSize = 0;
  /** Bytes produced so far. */
  total = 0;
  /** Bytes the head has acknowledged. */
  acked = 0;

  constructor(
    private readonly spoolPath: string,
    private readonly maxMemoryBytes: number,
  ) {}

  append(stream: LogStream, data: Buffer, time = Date.now()): void {
    if (data.length === 0) return;
    const last = this.segments[this.segments.length - 1];
    if (this.memoryBytes + data.length <= this.maxMemoryBytes) {
      if (last && last.data && last.stream === stream && last.length < 64 * 1024 && time - last.time < SAME_TIME_MS) {
        last.data = Buffer.concat([last.data, data]);
        last.length += data.length;
      } else {
        this.segments.push({ offset: this.total, length: data.length, stream, data, spoolAt: -1, time });
      }
      this.memoryBytes += data.length;
    } else {
      this.spoolFd ??= fs.openSync(this.spoolPath, 'w+', 0o600);
      fs.writeSync(this.spoolFd, data, 0, data.length, this.spoolSize);
      this.segments.push({ offset: this.total, length: data.length, stream, data: null, spoolAt: this.spoolSize, time });
      this.spoolSize += data.length;
    }
    this.total += data.length;
  }

  get unacked(): number {
    return this.total - this.acked;
  }

  /** Unacknowledged output from the acked offset, at most `maxBytes` (whole pieces of one stream). */
  read(maxBytes: number): LogPiece[] {
    const out: LogPiece[] = [];
    let budget = maxBytes;
    for (const s of this.segments) {
      if (budget <= 0) break;
      const end = s.offset + s.length;
      if (end <= this.acked) continue;
      const from = Math.max(this.acked, s.offset) - s.offset;
      const len = Math.min(s.length - from, budget);
      let data: Buffer;
      if (s.data) data = s.data.subarray(from, from + len);
      else {
        data = Buffer.alloc(len);
        if (this.spoolFd !== null) fs.readSync(this.spoolFd, data, 0, len, s.spoolAt + from);
      }
      out.push({ offset: s.offset + from, stream: s.stream, data, time: s.time });
      budget -= len;
    }
    return out;
  }

  /** The head holds everything below `offset`. */
  ack(offset: number): void {
    if (offset <= this.acked) return;
    this.acked = Math.min(offset, this.total);
    while (this.segments.length) {
      const s = this.segments[0];
      if (!s || s.offset + s.length > this.acked) break;
      if (s.data) this.memoryBytes -= s.length;
      this.segments.shift();
    }
    if (this.segments.every((s) => s.data !== null) && this.spoolFd !== null) this.closeSpool();
  }

  dispose(): void {
    this.segments = [];
    this.memoryBytes = 0;
    this.closeSpool();
  }

  private closeSpool(): void {
    if (this.spoolFd === null) return;
    fs.closeSync(this.spoolFd);
    fs.rmSync(this.spoolPath, { force: true });
    this.spoolFd = null;
    this.spoolSize = 0;
  }
}
