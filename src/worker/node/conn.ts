/**
 * The connection of a Node process (a job's entrypoint or a worker) to its agent's job socket.
 * Self-contained: this file is copied into every agent's work dir and loaded inside sandboxes.
 * Frames are `[u32 header length][u32 payload length][JSON header][payload]`, big-endian.
 */
import net from 'node:net';
import type { AgentMessage, ExecuteTask } from '../../shared/protocol/injob.js';
import { AGENT_MESSAGE, SIZES } from './contract.js';
import { mismatch } from './schema.js';

export interface Resolved {
  state: 'value' | 'path' | 'error' | 'remote';
  data: Buffer;
  path?: string;
  error?: { type: string; message: string; traceback: string; task: string };
}

type Header = Record<string, unknown> & { t: string };

/** The agent takes headers of at most 1 MiB: a batch's header is cut well below that. */
const FLUSH_AT_HEADER_BYTES = SIZES.BATCH_HEADER_BYTES;
const FLUSH_AT_TASKS = 500;
const FLUSH_AT_BYTES = 4 * 1024 * 1024;
const GET_REFS_PER_FRAME = SIZES.GET_REFS_PER_FRAME;

export class Connection {
  readonly objects = new Map<string, Resolved>();
  readonly owned = new Set<string>();
  readonly requested = new Set<string>();
  nodeId = '';
  jobId = '';
  closed: Error | null = null;
  private executor: ((task: ExecuteTask, payload: Buffer) => void) | null = null;
  /** Tasks that arrived before the worker took them (one may come right behind the welcome). */
  private early: [ExecuteTask, Buffer][] = [];
  private readonly waiters = new Set<() => void>();
  private chunks: Buffer[] = [];
  private buffered = 0;
  private batch: { tasks: string[]; payload: Buffer[]; headerBytes: number; payloadBytes: number } | null = null;
  private readonly ready: Promise<void>;

  constructor(
    private readonly sock: net.Socket,
    hello: Header,
  ) {
    this.ready = new Promise((resolve, reject) => {
      let welcomed = false;
      sock.on('data', (chunk: Buffer) => {
        this.chunks.push(chunk);
        this.buffered += chunk.length;
        for (;;) {
          let frame: { msg: AgentMessage; payload: Buffer } | null;
          try {
            frame = this.frame();
          } catch (err) {
            sock.destroy(err as Error);
            return;
          }
          if (!frame) break;
          const msg = frame.msg;
          if (!welcomed) {
            if (msg.t !== 'welcome') return reject(new Error(`the agent refused this process: ${msg.t === 'error' ? `${msg.code}: ${msg.message}` : msg.t}`));
            welcomed = true;
            this.nodeId = msg.node_id;
            this.jobId = msg.job_id;
            resolve();
            continue;
          }
          this.dispatch(msg, frame.payload);
        }
      });
      const gone = (err?: Error): void => {
        this.closed = err ?? new Error('the agent closed the connection');
        reject(this.closed);
        this.notify();
      };
      sock.on('error', gone);
      sock.on('close', () => gone());
    });
    this.ready.catch(() => undefined);
    this.send(hello);
  }

  static async open(path: string, hello: Header): Promise<Connection> {
    const sock = net.createConnection(path);
    const c = new Connection(sock, hello);
    await c.ready;
    return c;
  }

  /** The next whole frame, its header checked against the contract; throws for one this library does not understand. */
  private frame(): { msg: AgentMessage; payload: Buffer } | null {
    if (this.buffered < 8) return null;
    let all = this.chunks.length === 1 ? (this.chunks[0] as Buffer) : Buffer.concat(this.chunks);
    const hlen = all.readUInt32BE(0);
    const plen = all.readUInt32BE(4);
    if (all.length < 8 + hlen + plen) {
      this.chunks = [all];
      return null;
    }
    const header: unknown = JSON.parse(all.subarray(8, 8 + hlen).toString('utf8'));
    const bad = mismatch(AGENT_MESSAGE, header);
    if (bad) throw new Error(`the agent sent a message this library does not understand (${bad}): are the agent and this library the same version?`);
    const payload = all.subarray(8 + hlen, 8 + hlen + plen);
    all = all.subarray(8 + hlen + plen);
    this.chunks = all.length ? [all] : [];
    this.buffered = all.length;
    return { msg: header as AgentMessage, payload };
  }

  private dispatch(msg: AgentMessage, payload: Buffer): void {
    if (msg.t === 'resolved') {
      let at = 0;
      for (const item of msg.items) {
        const n = item.state === 'value' || item.state === 'error' ? item.len : 0;
        this.objects.set(item.id, { state: item.state, data: payload.subarray(at, at + n), path: item.path, error: item.error });
        at += n;
      }
      this.notify();
    } else if (msg.t === 'execute') {
      if (this.executor) this.executor(msg.task, payload);
      else this.early.push([msg.task, payload]);
    } else if (msg.t === 'error') this.sock.destroy(new Error(`the agent closed this connection: ${msg.code}: ${msg.message}`));
  }

  set onExecute(fn: (task: ExecuteTask, payload: Buffer) => void) {
    this.executor = fn;
    const early = this.early;
    this.early = [];
    for (const [t, p] of early) fn(t, p);
  }

  private notify(): void {
    for (const w of [...this.waiters]) w();
  }

  /** Resolve when `check` holds (re-checked whenever results arrive), or reject on timeout. */
  until(check: () => boolean, timeoutMs: number | null): Promise<boolean> {
    if (check()) return Promise.resolve(true);
    return new Promise((resolve, reject) => {
      const done = (ok: boolean): void => {
        this.waiters.delete(w);
        if (timer) clearTimeout(timer);
        resolve(ok);
      };
      const w = (): void => {
        if (this.closed) {
          this.waiters.delete(w);
          reject(this.closed);
        } else if (check()) done(true);
      };
      const timer = timeoutMs === null ? null : setTimeout(() => done(false), timeoutMs);
      this.waiters.add(w);
    });
  }

  send(header: Header | Buffer, payload: readonly Buffer[] = []): void {
    const h = Buffer.isBuffer(header) ? header : Buffer.from(JSON.stringify(header));
    const prefix = Buffer.allocUnsafe(8);
    prefix.writeUInt32BE(h.length, 0);
    prefix.writeUInt32BE(payload.reduce((n, b) => n + b.length, 0), 4);
    this.sock.cork();
    this.sock.write(prefix);
    this.sock.write(h);
    for (const p of payload) if (p.length) this.sock.write(p);
    this.sock.uncork();
  }

  /** Buffer a submission; batches go out at the end of the current turn of the event loop. */
  submit(spec: Record<string, unknown>, args: Buffer): void {
    this.owned.add(String(spec.id));
    const encoded = JSON.stringify(spec);
    if (this.batch && this.batch.headerBytes + encoded.length > FLUSH_AT_HEADER_BYTES) this.flush();
    if (!this.batch) {
      this.batch = { tasks: [], payload: [], headerBytes: 0, payloadBytes: 0 };
      setImmediate(() => this.flush());
    }
    this.batch.tasks.push(encoded);
    this.batch.payload.push(args);
    this.batch.headerBytes += encoded.length + 1;
    this.batch.payloadBytes += args.length;
    if (this.batch.tasks.length >= FLUSH_AT_TASKS || this.batch.payloadBytes >= FLUSH_AT_BYTES) this.flush();
  }

  flush(): void {
    const b = this.batch;
    this.batch = null;
    if (b && b.tasks.length) this.send(Buffer.from(`{"t":"submit","tasks":[${b.tasks.join(',')}]}`), b.payload);
  }

  request(refs: readonly { id: string; owner: string }[]): void {
    const want = refs.filter((r) => !this.requested.has(r.id));
    for (const r of want) this.requested.add(r.id);
    for (let at = 0; at < want.length; at += GET_REFS_PER_FRAME) {
      this.send({ t: 'get', refs: want.slice(at, at + GET_REFS_PER_FRAME).map((r) => ({ id: r.id, owner: r.owner })) });
    }
  }

  close(): void {
    this.flush();
    this.sock.end();
  }
}
