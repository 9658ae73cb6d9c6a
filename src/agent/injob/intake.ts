/**
 * What the agent takes from one connection of a job's process: each frame's sizes are checked
 * against what its sender may send before anything is held, its header is parsed by the
 * protocol's schema, and its payload is either streamed to disk (a large object) or held in memory
 * counted against the job's share until the frame has been handled.
 */
import { parseClientMessage, type ClientMessage } from '../../shared/protocol/index.js';
import { formatBytes } from '../../shared/resources.js';
import type { JobBudget } from './budget.js';
import type { Conn } from './conn.js';
import { FrameError, type Frame, type FrameHandler, type PayloadStream } from './frames.js';
import { HEADER_COST_FACTOR, MAX_HEADER_BYTES, MAX_PAYLOAD_BYTES } from './limits.js';

/** A frame before the hello: a hello is small. */
const MAX_HELLO_BYTES = 64 * 1024;

export interface IntakeHooks {
  /** Check a message before its payload is read (ids free, a worker to say hello as): throw a FrameError to refuse it. */
  check(conn: IntakeConn, msg: ClientMessage, payloadBytes: number): void;
  /** Where a large payload goes as it arrives, or null to hold it in memory. */
  stream(conn: IntakeConn, msg: ClientMessage, payloadBytes: number): PayloadStream | null;
  /** A whole frame. */
  frame(conn: IntakeConn, f: Frame<ClientMessage>): void;
}

/** What reading a frame needs of its connection's job. */
type IntakeConn = Conn<{ readonly memory: number; readonly budget: JobBudget }>;

export class Intake implements FrameHandler<ClientMessage> {
  /** Bytes of the current frame counted against the job while it is read. */
  private charged = 0;

  constructor(
    private readonly conn: IntakeConn,
    private readonly hooks: IntakeHooks,
  ) {}

  /** The most one frame from this connection may be: its sender's memory limit, if it has one. */
  private frameLimit(): number {
    if (!this.conn.role) return MAX_HELLO_BYTES;
    // A task's `memory=` is logical (its worker has the job's memory limit): the job's limit bounds its frames.
    const mem = this.conn.job.memory;
    return mem > 0 ? Math.min(mem, MAX_PAYLOAD_BYTES) : MAX_PAYLOAD_BYTES;
  }

  /** Why frameLimit() is what it is (described only for a frame refused). */
  private limitWhy(): string {
    if (!this.conn.role) return 'before its hello';
    const mem = this.conn.job.memory;
    return mem > 0 ? `from a process limited to ${formatBytes(mem)}` : 'from any process';
  }

  admit(headerBytes: number, payloadBytes: number): void {
    const limit = this.frameLimit();
    if (!this.conn.role && headerBytes + payloadBytes > limit) throw new FrameError('INVALID_FRAME', `a frame of ${formatBytes(headerBytes + payloadBytes)} ${this.limitWhy()}`);
    if (headerBytes > MAX_HEADER_BYTES) this.over(`a frame header of ${formatBytes(headerBytes)}: headers are at most ${formatBytes(MAX_HEADER_BYTES)}`);
    const total = 8 + headerBytes + payloadBytes;
    if (total > limit) this.over(`a frame of ${formatBytes(total)} ${this.limitWhy()} (no frame may be larger than its sender's memory limit, nor than ${formatBytes(MAX_PAYLOAD_BYTES)})`);
    this.hold(headerBytes * HEADER_COST_FACTOR, () => `a frame header of ${formatBytes(headerBytes)}`);
  }

  route(header: unknown, payloadBytes: number): { msg: ClientMessage; stream: PayloadStream | null } {
    const parsed = parseClientMessage(header);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new FrameError('INVALID_MESSAGE', `bad message: ${issue ? `${issue.path.join('.') || 'header'}: ${issue.message}` : 'unknown'}`);
    }
    const msg = parsed.data;
    if (!this.conn.role && msg.t !== 'hello') throw new FrameError('UNAUTHORIZED', 'say hello first');
    const declared = declaredPayload(msg);
    if (declared !== null && declared !== payloadBytes) throw new FrameError('INVALID_MESSAGE', `the message declares ${declared} payload bytes; the frame carries ${payloadBytes}`);
    this.hooks.check(this.conn, msg, payloadBytes);
    const stream = payloadBytes > 0 ? this.hooks.stream(this.conn, msg, payloadBytes) : null;
    if (!stream) this.hold(payloadBytes, () => `a ${msg.t} frame of ${formatBytes(payloadBytes)}`);
    return { msg, stream };
  }

  frame(f: Frame<ClientMessage>): void {
    // What the frame becomes (inline objects, queued tasks' arguments) is counted on its own.
    this.releaseFrame();
    this.hooks.frame(this.conn, f);
  }

  /** The connection is gone: nothing of a half-read frame is held any more. */
  close(): void {
    this.releaseFrame();
  }

  private releaseFrame(): void {
    this.conn.job.budget.release(this.charged);
    this.charged = 0;
  }

  private hold(bytes: number, what: () => string): void {
    // Before its hello a connection is nobody's: its (small) frames are not the job's to pay for.
    if (!this.conn.role) return;
    if (!this.conn.job.budget.hold(bytes, what)) throw new FrameError('LIMIT_EXCEEDED', this.conn.job.budget.over ?? 'over the job share');
    this.charged += bytes;
  }

  private over(why: string): never {
    this.conn.job.budget.exceeded(why);
    throw new FrameError('LIMIT_EXCEEDED', this.conn.job.budget.over ?? why);
  }
}

/** The payload a message says it carries (null for messages whose payload is not described). */
function declaredPayload(msg: ClientMessage): number | null {
  switch (msg.t) {
    case 'submit':
      return msg.tasks.reduce((n, t) => n + t.args_len, 0);
    case 'put':
    case 'result':
      return msg.file ? 0 : msg.len;
    case 'yield':
    case 'request':
      return msg.len;
    default:
      return 0;
  }
}
