import fs from 'node:fs';
import { writeAll } from './logIo.js';

const HEADER = 32;

interface Header {
  attempt: number;
  /** Absolute position up to which this attempt's output has been received. */
  received: number;
  /** Bytes dropped in this attempt. */
  dropped: number;
  /** Dropped bytes before this count are not in the ring (an agent skipped them unsent). */
  keptFrom: number;
}

/**
 * The end of an attempt's dropped output, in a small ring file beside its log (part of LogStore,
 * which alone calls it): a 32-byte header (attempt, position received, bytes dropped, bytes dropped
 * before the ring's first) and a ring
 * of the last `size` bytes. The header makes resends after a head restart count once.
 */
export class DroppedTail {
  constructor(private readonly size: number) {}

  private readHeader(fd: number): Header | null {
    const buf = Buffer.alloc(HEADER);
    if (fs.readSync(fd, buf, 0, HEADER, 0) < HEADER) return null;
    return { attempt: buf.readUInt32LE(0), received: buf.readDoubleLE(8), dropped: buf.readDoubleLE(16), keptFrom: buf.readDoubleLE(24) };
  }

  private writeHeader(fd: number, h: Header): void {
    const head = Buffer.alloc(HEADER);
    head.writeUInt32LE(h.attempt, 0);
    head.writeDoubleLE(h.received, 8);
    head.writeDoubleLE(h.dropped, 16);
    head.writeDoubleLE(h.keptFrom, 24);
    writeAll(fd, head, 0);
  }

  private open(file: string, attempt: number, at: number): { fd: number; h: Header } {
    const fd = fs.openSync(file, fs.existsSync(file) ? 'r+' : 'w+', 0o600);
    let h = this.readHeader(fd);
    if (!h || h.attempt !== attempt) h = { attempt, received: at, dropped: 0, keptFrom: 0 };
    return { fd, h };
  }

  /** Count `n` bytes from absolute position `at` as dropped without their content; returns the position received. */
  skip(file: string, attempt: number, at: number, n: number): number {
    const { fd, h } = this.open(file, attempt, at);
    try {
      if (at > h.received || at + n <= h.received) return h.received;
      const fresh = at + n - h.received;
      h.dropped += fresh;
      h.received += fresh;
      h.keptFrom = h.dropped;
      this.writeHeader(fd, h);
      return h.received;
    } finally {
      fs.closeSync(fd);
    }
  }

  /** Remember dropped bytes starting at absolute position `at`; returns the position received. */
  add(file: string, attempt: number, at: number, data: Buffer): number {
    const { fd, h } = this.open(file, attempt, at);
    try {
      if (at > h.received || at + data.length <= h.received) return h.received;
      const fresh = data.subarray(h.received - at);
      const keep = fresh.subarray(Math.max(0, fresh.length - this.size));
      let pos = (h.dropped + fresh.length - keep.length) % this.size;
      let rest = keep;
      while (rest.length > 0) {
        const n = Math.min(rest.length, this.size - pos);
        writeAll(fd, rest.subarray(0, n), HEADER + pos);
        rest = rest.subarray(n);
        pos = (pos + n) % this.size;
      }
      h.dropped += fresh.length;
      h.received += fresh.length;
      this.writeHeader(fd, h);
      return h.received;
    } finally {
      fs.closeSync(fd);
    }
  }

  /** The bytes kept (from a line start where the ring wrapped) and how many were dropped; null if none. */
  take(file: string): { dropped: number; data: Buffer } | null {
    let fd: number;
    try {
      fd = fs.openSync(file, 'r');
    } catch {
      return null;
    }
    try {
      const h = this.readHeader(fd);
      if (!h) return null;
      const ring = Buffer.alloc(Math.min(h.dropped, this.size));
      fs.readSync(fd, ring, 0, ring.length, HEADER);
      const held = Math.min(ring.length, h.dropped - h.keptFrom);
      if (h.dropped <= this.size && held === ring.length) return { dropped: h.dropped, data: ring };
      const pos = h.dropped % this.size;
      const ordered = Buffer.concat([ring.subarray(pos), ring.subarray(0, pos)]).subarray(ring.length - held);
      const nl = ordered.indexOf(0x0a);
      return { dropped: h.dropped, data: nl >= 0 && nl < ordered.length - 1 ? ordered.subarray(nl + 1) : ordered };
    } finally {
      fs.closeSync(fd);
    }
  }
}
