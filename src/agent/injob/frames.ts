/**
 * Job-socket framing: `[u32 header length][u32 payload length][JSON header][payload]`, big-endian.
 *
 * The reader never holds more of a frame than its handler admitted: the sizes are checked as soon
 * as the 8-byte prefix is in, the header is parsed as soon as it is in, and the handler then says
 * where the payload goes, into memory (one copy, counted by the handler) or into a stream (a large
 * object written to disk as it arrives, never held whole).
 */
import type { Socket } from 'node:net';
import type { SocketErrorCode } from '../../shared/protocol/index.js';

/** Where a frame's payload goes while it arrives. */
export interface PayloadStream {
  write(chunk: Buffer): void;
  /** The whole payload is in. */
  end(): void;
  /** The frame will never be complete (the connection closed, or it was refused). */
  abort(): void;
}

export interface FrameHandler<M> {
  /** The frame's sizes are known: throw a FrameError to refuse it before anything is held. */
  admit(headerBytes: number, payloadBytes: number): void;
  /**
   * The header is in: check it (throw a FrameError to refuse it) and say where its payload goes,
   * into memory (`stream` null) or into a stream.
   */
  route(header: unknown, payloadBytes: number): { msg: M; stream: PayloadStream | null };
  /** The frame is complete (a streamed payload arrives here empty). */
  frame(f: Frame<M>): void;
}

export interface Frame<M = unknown> {
  msg: M;
  payload: Buffer;
  /** The payload went to the stream `route` returned. */
  streamed: boolean;
}

/** A frame the connection must be refused for. */
export class FrameError extends Error {
  constructor(
    readonly code: SocketErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** Payloads up to this size are copied into the frame's one buffer (one write, instead of a write of several buffers). */
const COPIED_PAYLOAD_BYTES = 16 * 1024;

/** A frame's bytes: one buffer for a small frame, else its prefix and header, then the payload's own buffers (not copied). */
export function encodeFrame(header: unknown, payload?: Buffer | readonly Buffer[]): Buffer[] {
  const json = JSON.stringify(header);
  const hlen = Buffer.byteLength(json);
  const parts = payload === undefined ? [] : Buffer.isBuffer(payload) ? [payload] : payload;
  let plen = 0;
  for (const b of parts) plen += b.length;
  const small = plen <= COPIED_PAYLOAD_BYTES;
  const head = Buffer.allocUnsafe(8 + hlen + (small ? plen : 0));
  head.writeUInt32BE(hlen, 0);
  head.writeUInt32BE(plen, 4);
  head.write(json, 8, 'utf8');
  if (!small) return [head, ...parts];
  let at = 8 + hlen;
  for (const b of parts) at += b.copy(head, at);
  return [head];
}

/** Queue a frame on the socket (a large payload's bytes are referenced, not copied). */
export function writeFrame(sock: Socket, header: unknown, payload?: Buffer | readonly Buffer[]): void {
  const parts = encodeFrame(header, payload);
  if (sock.destroyed) return;
  if (parts.length === 1) {
    sock.write(parts[0] as Buffer);
    return;
  }
  sock.cork();
  for (const p of parts) sock.write(p);
  sock.uncork();
}

type Stage = 'prefix' | 'header' | 'payload';

export class FrameReader<M> {
  private stage: Stage = 'prefix';
  /** Bytes the current stage needs in all. */
  private need = 8;
  private parts: Buffer[] = [];
  private got = 0;
  private msg: M | null = null;
  private payloadBytes = 0;
  private stream: PayloadStream | null = null;
  private broken = false;

  constructor(private readonly handler: FrameHandler<M>) {}

  /** Feed bytes; throws (a FrameError for what the peer did) when the connection must be closed. */
  push(chunk: Buffer): void {
    if (this.broken) return;
    try {
      this.consume(chunk);
    } catch (err) {
      this.broken = true;
      this.close();
      throw err;
    }
  }

  /** The connection is gone: a payload half-streamed is abandoned. */
  close(): void {
    const s = this.stream;
    this.stream = null;
    this.parts = [];
    s?.abort();
  }

  private consume(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length && !this.broken) {
      const need = this.need;
      if (this.got === 0 && this.stage !== 'payload' && chunk.length - at >= need) {
        // The whole prefix or header is in this chunk: read where it is, nothing collected.
        at += need;
        if (this.stage === 'prefix') this.prefix(chunk.readUInt32BE(at - 8), chunk.readUInt32BE(at - 4));
        else this.header(chunk.toString('utf8', at - need, at));
        continue;
      }
      const take = Math.min(need - this.got, chunk.length - at);
      const piece = chunk.subarray(at, at + take);
      at += take;
      this.got += take;
      if (this.stage === 'payload' && this.stream) this.stream.write(piece);
      else if (take > 0) this.parts.push(piece);
      if (this.got === this.need) this.advance();
    }
  }

  private collected(): Buffer {
    const parts = this.parts;
    this.parts = [];
    this.got = 0;
    return parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts);
  }

  private advance(): void {
    if (this.stage === 'prefix') {
      const p = this.collected();
      return this.prefix(p.readUInt32BE(0), p.readUInt32BE(4));
    }
    if (this.stage === 'header') return this.header(this.collected().toString('utf8'));
    this.complete();
  }

  private prefix(hlen: number, payloadBytes: number): void {
    this.payloadBytes = payloadBytes;
    if (hlen === 0) throw new FrameError('INVALID_FRAME', 'a frame needs a header');
    this.handler.admit(hlen, payloadBytes);
    this.stage = 'header';
    this.need = hlen;
  }

  private header(text: string): void {
    let header: unknown;
    try {
      header = JSON.parse(text);
    } catch {
      throw new FrameError('INVALID_FRAME', 'the header is not JSON');
    }
    const routed = this.handler.route(header, this.payloadBytes);
    this.msg = routed.msg;
    this.stream = routed.stream;
    this.stage = 'payload';
    this.need = this.payloadBytes;
    if (this.need === 0) this.complete();
  }

  private complete(): void {
    const streamed = this.stream !== null;
    const payload = streamed ? Buffer.alloc(0) : this.collected();
    this.got = 0;
    const stream = this.stream;
    this.stream = null;
    stream?.end();
    const msg = this.msg as M;
    this.msg = null;
    this.stage = 'prefix';
    this.need = 8;
    this.handler.frame({ msg, payload, streamed });
  }
}
