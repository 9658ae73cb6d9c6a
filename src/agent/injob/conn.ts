/**
 * One connection of a job's process to its agent's job socket: who it is (after its hello), what
 * the agent sends it, and the agent's side of flow control. A client that does not read its
 * answers is not read from either, so its requests cannot pile answers up in the agent.
 */
import type net from 'node:net';
import { guarded } from '../../shared/boundary.js';
import type { Logger } from '../../shared/log.js';
import type { AgentMessage, Lang, ResolvedItem, SocketErrorCode } from '../../shared/protocol/index.js';
import { writeFrame } from './frames.js';
import { HELLO_TIMEOUT_MS, MAX_UNREAD_BYTES } from './limits.js';

/** A connection on a job's socket: `J` is the job it belongs to, `W` the worker that said hello on it. */
export class Conn<J = unknown, W = unknown> {
  role: 'driver' | 'worker' | null = null;
  lang: Lang = 'python';
  worker: W | null = null;
  closed = false;
  /** Ids this client asked for: asking again is answered once. */
  readonly asked = new Set<string>();
  private batch: { items: ResolvedItem[]; payload: Buffer[] } | null = null;
  private paused = false;
  private readonly helloTimer: NodeJS.Timeout;

  constructor(
    readonly sock: net.Socket,
    readonly job: J,
    private readonly log: Logger,
  ) {
    this.helloTimer = setTimeout(
      guarded(log, 'job socket hello timeout', () => {
        if (!this.role) this.refuse('UNAUTHORIZED', `no hello within ${HELLO_TIMEOUT_MS / 1000}s`);
      }),
      HELLO_TIMEOUT_MS,
    );
    this.helloTimer.unref();
  }

  /** It said hello with the job's token. */
  welcome(role: 'driver' | 'worker', lang: Lang): void {
    clearTimeout(this.helloTimer);
    this.role = role;
    this.lang = lang;
  }

  send(msg: AgentMessage, payload?: Buffer | readonly Buffer[]): void {
    if (this.closed) return;
    writeFrame(this.sock, msg, payload);
    if (!this.paused && this.sock.writableLength > MAX_UNREAD_BYTES) {
      // It does not read what it asked for: read no more of its requests until it has.
      this.paused = true;
      this.sock.pause();
      this.sock.once(
        'drain',
        guarded(this.log, 'job socket drain', () => {
          this.paused = false;
          if (!this.closed) this.sock.resume();
        }),
      );
    }
  }

  /** Tell the client why, then close: nothing more is read from it. */
  refuse(code: SocketErrorCode, message: string): void {
    if (this.closed) return;
    this.send({ t: 'error', code, message });
    this.closed = true;
    clearTimeout(this.helloTimer);
    // Nothing more is read from it. Why is handed to the kernel before the descriptor goes (a
    // reader finds it in its queue after the close); one that does not read gets 2 s at most.
    this.sock.pause();
    this.sock.end(() => this.sock.destroy());
    setTimeout(
      guarded(this.log, 'job socket close', () => this.sock.destroy()),
      2000,
    ).unref();
  }

  /** The socket closed. */
  gone(): void {
    this.closed = true;
    clearTimeout(this.helloTimer);
  }

  /** Results for this client, coalesced into one frame per turn of the event loop. */
  resolved(item: ResolvedItem, data?: Buffer): void {
    if (!this.batch) {
      const batch: { items: ResolvedItem[]; payload: Buffer[] } = { items: [], payload: [] };
      this.batch = batch;
      setImmediate(
        guarded(this.log, 'job socket answer', () => {
          this.batch = null;
          this.send({ t: 'resolved', items: batch.items }, batch.payload);
        }),
      );
    }
    this.batch.items.push(item);
    if (data && data.length > 0) this.batch.payload.push(data);
  }
}
