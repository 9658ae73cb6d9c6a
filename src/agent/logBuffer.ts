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
  /** Past the head's cap: kept in memory, only the last `tailBytes` of such output. */
  over: boolean;
}

export interface LogPiece {
  offset: number;
  /** Bytes from `offset` on that were dropped past the head's cap; `data` follows them. */
  skipped: number;
  stream: LogStream;
  data: Buffer;
  /** When the agent read the piece's first byte (a piece never spans two capture times). */
  time: number;
}

/**
 * The head's log cap (it keeps the first `keepBytes` of a job's output and the last `tailBytes` of
 * each attempt's output past that): an attempt's output past `keepBytes` is what the head would
 * drop but for its tail, so the agent keeps only its last `tailBytes`, in memory.
 */
export interface LogCap {
  keepBytes: number;
  tailBytes: number;
}

/** Output read within this long of a segment's first byte shares its capture time. */
const SAME_TIME_MS = 10;

/**
 * Output of one task attempt that the head has not acknowledged yet. Kept in memory up to a
 * bound, then spilled to a file in the agent's work dir, so a long head outage loses nothing the
 * head would keep: past the head's cap only the attempt's last bytes are kept (`LogCap`), so a
 * talkative task does not fill the node's disk while the head is away.
 */
export class LogBuffer {
  private segments: Segment[] = [];
  private memoryBytes = 0;
  private spoolFd: number | null = null;
  private spoolSize = 0;
  /** Bytes held in segments past the cap. */
  private overBytes = 0;
  /** Bytes produced so far. */
  total = 0;
  /** Bytes the head has acknowledged. */
  acked = 0;

  constructor(
    private readonly spoolPath: string,
    private readonly maxMemoryBytes: number,
    private readonly cap: LogCap | null = null,
  ) {}

  append(stream: LogStream, data: Buffer, time = Date.now()): void {
    if (data.length === 0) return;
    if (this.cap && this.total + data.length > this.cap.keepBytes) {
      const room = Math.max(0, this.cap.keepBytes - this.total);
      if (room > 0) this.keep(stream, data.subarray(0, room), time);
      this.keepLast(stream, data.subarray(room), time, this.cap.tailBytes);
      return;
    }
    this.keep(stream, data, time);
  }

  private keep(stream: LogStream, data: Buffer, time: number): void {
    const last = this.segments[this.segments.length - 1];
    if (this.memoryBytes + data.length <= this.maxMemoryBytes) {
      if (last && last.data && last.stream === stream && last.length < 64 * 1024 && time - last.time < SAME_TIME_MS) {
        last.data = Buffer.concat([last.data, data]);
        last.length += data.length;
      } else {
        this.segments.push({ offset: this.total, length: data.length, stream, data, spoolAt: -1, time, over: false });
      }
      this.memoryBytes += data.length;
    } else {
      this.spoolFd ??= fs.openSync(this.spoolPath, 'w+', 0o600);
      fs.writeSync(this.spoolFd, data, 0, data.length, this.spoolSize);
      this.segments.push({ offset: this.total, length: data.length, stream, data: null, spoolAt: this.spoolSize, time, over: false });
      this.spoolSize += data.length;
    }
    this.total += data.length;
  }

  /** Output past the cap: held in memory, and of it only the last `tail` bytes. */
  private keepLast(stream: LogStream, data: Buffer, time: number, tail: number): void {
    const last = this.segments[this.segments.length - 1];
    if (last?.over && last.data && last.stream === stream && last.length < 64 * 1024 && time - last.time < SAME_TIME_MS) {
      last.data = Buffer.concat([last.data, data]);
      last.length += data.length;
    } else {
      this.segments.push({ offset: this.total, length: data.length, stream, data, spoolAt: -1, time, over: true });
    }
    this.total += data.length;
    this.memoryBytes += data.length;
    this.overBytes += data.length;
    let excess = this.overBytes - tail;
    while (excess > 0) {
      const i = this.segments.findIndex((seg) => seg.over);
      const s = this.segments[i];
      if (!s?.data) break;
      const cut = Math.min(excess, s.length);
      if (cut === s.length) this.segments.splice(i, 1);
      else {
        s.data = s.data.subarray(cut);
        s.offset += cut;
        s.length -= cut;
      }
      this.memoryBytes -= cut;
      this.overBytes -= cut;
      excess -= cut;
    }
  }

  get unacked(): number {
    return this.total - this.acked;
  }

  /** Unacknowledged output from the acked offset, at most `maxBytes` (whole pieces of one stream). */
  read(maxBytes: number): LogPiece[] {
    const out: LogPiece[] = [];
    let budget = maxBytes;
    let pos = this.acked;
    for (const s of this.segments) {
      if (budget <= 0) break;
      const end = s.offset + s.length;
      if (end <= this.acked) continue;
      const from = Math.max(this.acked, s.offset) - s.offset;
      const len = Math.min(s.length - from, budget);
      const skipped = s.offset + from - pos;
      let data: Buffer;
      if (s.data) data = s.data.subarray(from, from + len);
      else {
        data = Buffer.alloc(len);
        if (this.spoolFd !== null) fs.readSync(this.spoolFd, data, 0, len, s.spoolAt + from);
      }
      out.push({ offset: pos, skipped, stream: s.stream, data, time: s.time });
      pos = s.offset + from + len;
      budget -= len;
    }
    // Output dropped at the very end (no tail kept): the head still hears how much there was.
    const last = this.segments[this.segments.length - 1];
    const held = last ? last.offset + last.length : this.acked;
    if (pos >= held && pos < this.total) out.push({ offset: pos, skipped: this.total - pos, stream: 'stdout', data: Buffer.alloc(0), time: Date.now() });
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
      if (s.over) this.overBytes -= s.length;
      this.segments.shift();
    }
    if (this.segments.every((s) => s.data !== null) && this.spoolFd !== null) this.closeSpool();
  }

  dispose(): void {
    this.segments = [];
    this.memoryBytes = 0;
    this.overBytes = 0;
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
