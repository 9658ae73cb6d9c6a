/**
 * Job-socket framing: `[u32 header length][u32 payload length][JSON header][payload]`, big-endian.
 * The reader keeps partial frames across chunks and never copies a payload more than once.
 */
import type { Socket } from 'node:net';

export const MAX_HEADER_BYTES = 64 * 1024 * 1024;
export const MAX_PAYLOAD_BYTES = 2 * 1024 * 1024 * 1024 - 1;

export interface Frame {
  header: unknown;
  payload: Buffer;
}

export function encodeFrame(header: unknown, payload?: Buffer | readonly Buffer[]): Buffer[] {
  const h = Buffer.from(JSON.stringify(header));
  const parts = payload === undefined ? [] : Buffer.isBuffer(payload) ? [payload] : [...payload];
  const plen = parts.reduce((n, b) => n + b.length, 0);
  const prefix = Buffer.allocUnsafe(8);
  prefix.writeUInt32BE(h.length, 0);
  prefix.writeUInt32BE(plen, 4);
  return [prefix, h, ...parts];
}

/** Write a frame; resolves when the socket has taken it (back-pressure for large payloads). */
export function writeFrame(sock: Socket, header: unknown, payload?: Buffer | readonly Buffer[]): void {
  const parts = encodeFrame(header, payload);
  if (sock.destroyed) return;
  sock.cork();
  for (const p of parts) sock.write(p);
  sock.uncork();
}

export class FrameReader {
  private chunks: Buffer[] = [];
  private buffered = 0;

  constructor(private readonly onFrame: (f: Frame) => void) {}

  /** Feed bytes; throws on a malformed frame (the connection should then be closed). */
  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    for (;;) {
      if (this.buffered < 8) return;
      const head = this.peek(8);
      const hlen = head.readUInt32BE(0);
      const plen = head.readUInt32BE(4);
      if (hlen > MAX_HEADER_BYTES || plen > MAX_PAYLOAD_BYTES) throw new Error('frame too large');
      if (this.buffered < 8 + hlen + plen) return;
      const all = this.take(8 + hlen + plen);
      const header: unknown = JSON.parse(all.subarray(8, 8 + hlen).toString('utf8'));
      this.onFrame({ header, payload: all.subarray(8 + hlen) });
    }
  }

  private peek(n: number): Buffer {
    const first = this.chunks[0];
    if (first && first.length >= n) return first.subarray(0, n);
    return Buffer.concat(this.chunks).subarray(0, n);
  }

  private take(n: number): Buffer {
    const first = this.chunks[0];
    if (first && first.length >= n) {
      const out = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      this.buffered -= n;
      return out;
    }
    const all = Buffer.concat(this.chunks);
    const out = all.subarray(0, n);
    const rest = all.subarray(n);
    this.chunks = rest.length > 0 ? [rest] : [];
    this.buffered -= n;
    return out;
  }
}
