/**
 * The connection of a Node process (a job's entrypoint or a worker) to its agent's job socket.
 * Self-contained: this file is copied into every agent's work dir and loaded inside sandboxes.
 * Frames are `[u32 header length][u32 payload length][JSON header][payload]`, big-endian.
 */
import net from 'node:net';

export interface Resolved {
  state: 'value' | 'path' | 'error' | 'remote';
  data: Buffer;
  path?: string;
  error?: { type: string; message: string; traceback: string; task: string };
}

type Header = Record<string, unknown> & { t: string };

export class Connection {
  readonly objects = new Map<string, Resolved>();
  readonly owned = new Set<string>();
  readonly requested = new Set<string>();
  nodeId = '';
  jobId = '';
  closed: Error | null = null;
  private executor: ((task: Record<string, unknown>, payload: Buffer) => void) | null = null;
  /** Tasks that arrived before the worker took them (one may come right behind the welcome). */
  private early: [Record<string, unknown>, Buffer][] = [];
  private readonly waiters = new Set<() => void>();
  private chunks: Buffer[] = [];
  private buffered = 0;
  private batch: { tasks: unknown[]; payload: Buffer[] } | null = null;
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
          const frame = this.frame();
          if (!frame) break;
          if (!welcomed) {
            if (frame.header.t !== 'welcome') return reject(new Error(`the agent refused this process: ${String(frame.header.message)}`));
            welcomed = true;
            this.nodeId = String(frame.header.node_id);
            this.jobId = String(frame.header.job_id);
            resolve();
            continue;
          }
          this.dispatch(frame.header, frame.payload);
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

  private frame(): { header: Header; payload: Buffer } | null {
    if (this.buffered < 8) return null;
    let all = this.chunks.length === 1 ? (this.chunks[0] as Buffer) : Buffer.concat(this.chunks);
    const hlen = all.readUInt32BE(0);
    const plen = all.readUInt32BE(4);
    if (all.length < 8 + hlen + plen) {
      this.chunks = [all];
      return null;
    }
    const header = JSON.parse(all.subarray(8, 8 + hlen).toString('utf8')) as Header;
    const payload = all.subarray(8 + hlen, 8 + hlen + plen);
    all = all.subarray(8 + hlen + plen);
    this.chunks = all.length ? [all] : [];
    this.buffered = all.length;
    return { header, payload };
  }

  private dispatch(h: Header, payload: Buffer): void {
    if (h.t === 'resolved') {
      let at = 0;
      for (const item of h.items as { id: string; state: Resolved['state']; len: number; path?: string; error?: Resolved['error'] }[]) {
        const n = item.state === 'value' || item.state === 'error' ? item.len : 0;
        this.objects.set(item.id, { state: item.state, data: payload.subarray(at, at + n), path: item.path, error: item.error });
        at += n;
      }
      this.notify();
    } else if (h.t === 'execute') {
      if (this.executor) this.executor(h.task as Record<string, unknown>, payload);
      else this.early.push([h.task as Record<string, unknown>, payload]);
    }
    else if (h.t === 'error') this.sock.destroy(new Error(String(h.message)));
  }

  set onExecute(fn: (task: Record<string, unknown>, payload: Buffer) => void) {
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

  send(header: Header, payload: readonly Buffer[] = []): void {
    const h = Buffer.from(JSON.stringify(header));
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
    if (!this.batch) {
      this.batch = { tasks: [], payload: [] };
      setImmediate(() => this.flush());
    }
    this.batch.tasks.push(spec);
    this.batch.payload.push(args);
    if (this.batch.tasks.length >= 500) this.flush();
  }

  flush(): void {
    const b = this.batch;
    this.batch = null;
    if (b && b.tasks.length) this.send({ t: 'submit', tasks: b.tasks }, b.payload);
  }

  request(refs: readonly { id: string; owner: string }[]): void {
    const want = refs.filter((r) => !this.requested.has(r.id));
    for (const r of want) this.requested.add(r.id);
    if (want.length) this.send({ t: 'get', refs: want.map((r) => ({ id: r.id, owner: r.owner })) });
  }

  close(): void {
    this.flush();
    this.sock.end();
  }
}
