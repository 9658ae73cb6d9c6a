/**
 * One job's in-job state on this agent: its socket (bound into the job's sandboxes), the token
 * its processes present, its objects, warm workers and actors, and its task counts.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { InjobCounts, JobContext, Lang, TaskRef } from '../../shared/protocol/index.js';
import { FrameReader, writeFrame, type Frame } from './frames.js';
import { ObjectTable, type ObjValue } from './objects.js';
import type { Actor, Task, WorkerProc } from './types.js';

/** Longest path a Unix socket may have (sun_path is 108 bytes with its terminating NUL). */
const MAX_SOCKET_PATH = 107;

export class Conn {
  role: 'driver' | 'worker' | null = null;
  lang: Lang = 'python';
  worker: WorkerProc | null = null;
  closed = false;
  private batch: { items: unknown[]; payload: Buffer[] } | null = null;

  constructor(
    readonly sock: net.Socket,
    readonly job: JobState,
  ) {}

  send(header: unknown, payload?: Buffer | readonly Buffer[]): void {
    if (!this.closed) writeFrame(this.sock, header, payload);
  }

  /** Tell the client why, then close: nothing more is read from it. */
  refuse(code: string, message: string): void {
    if (this.closed) return;
    this.send({ t: 'error', code, message });
    this.closed = true;
    // What it sends from now on is dropped; it gets a moment to read why before the socket goes.
    this.sock.end();
    setTimeout(() => this.sock.destroy(), 2000).unref();
  }

  /** Results for this client, coalesced into one frame per turn of the event loop. */
  resolved(item: { id: string; state: string; len: number; path?: string; error?: unknown }, data?: Buffer): void {
    if (!this.batch) {
      const batch = { items: [] as unknown[], payload: [] as Buffer[] };
      this.batch = batch;
      setImmediate(() => {
        this.batch = null;
        this.send({ t: 'resolved', items: batch.items }, batch.payload);
      });
    }
    this.batch.items.push(item);
    if (data && data.length > 0) this.batch.payload.push(data);
  }
}

export class JobState {
  readonly token = crypto.randomBytes(24).toString('hex');
  readonly dir: string;
  readonly sockPath: string;
  readonly objects: ObjectTable;
  ctx: JobContext | null = null;
  /** Attempts of this job's own tasks running here: worker output goes to their log. */
  readonly drivers: TaskRef[] = [];
  readonly conns = new Set<Conn>();
  readonly workers = new Set<WorkerProc>();
  readonly actors = new Map<string, Actor>();
  /** Actors created by this node's clients: where their creation went, once decided. */
  readonly actorHome = new Map<string, Promise<'local' | 'remote'>>();
  /** Calls that reached this node before their actor's creation was placed here. */
  readonly parkedCalls = new Map<string, Task[]>();
  /** Per actor, the end of the chain that keeps one submitter's calls in order. */
  readonly callChains = new Map<string, Promise<void>>();
  readonly counts: InjobCounts = { pending: 0, running: 0, finished: 0, failed: 0, actors_alive: 0, actors_dead: 0 };
  private server: net.Server | null = null;
  private tmpDir: string | null = null;
  ended = false;
  workerSeq = 0;

  constructor(
    readonly jobId: string,
    root: string,
    nodeId: () => string,
    fetchRemote: (node: string, id: string, dest: string) => Promise<void>,
    askOwner: (owner: string, id: string) => Promise<ObjValue>,
  ) {
    const hash = crypto.createHash('sha256').update(jobId).digest('hex').slice(0, 12);
    this.dir = path.join(root, hash);
    fs.rmSync(this.dir, { recursive: true, force: true });
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o711 });
    let sock = path.join(this.dir, 'sock');
    if (sock.length > MAX_SOCKET_PATH) {
      // A deep work dir: the socket goes to a short private directory instead.
      this.tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'rsj-'));
      fs.chmodSync(this.tmpDir, 0o711);
      sock = path.join(this.tmpDir, 's');
    }
    this.sockPath = sock;
    this.objects = new ObjectTable(path.join(this.dir, 'objects'), nodeId, fetchRemote, askOwner);
  }

  /** Directories the job's sandboxes must see (read-only). */
  get paths(): string[] {
    return this.tmpDir ? [this.dir, this.tmpDir] : [this.dir];
  }

  listen(onFrame: (c: Conn, f: Frame) => void, onClose: (c: Conn) => void): Promise<void> {
    const server = net.createServer((sock) => {
      const conn = new Conn(sock, this);
      this.conns.add(conn);
      const reader = new FrameReader((f) => {
        if (!conn.closed) onFrame(conn, f);
      });
      sock.on('data', (chunk: Buffer) => {
        if (conn.closed) return;
        try {
          reader.push(chunk);
        } catch (err) {
          conn.refuse('INVALID_FRAME', `bad frame: ${(err as Error).message}`);
        }
      });
      sock.on('error', () => undefined);
      sock.on('close', () => {
        conn.closed = true;
        this.conns.delete(conn);
        onClose(conn);
      });
    });
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.sockPath, () => {
        // Any uid may connect (tasks run as uids of their own); the token decides who is served.
        fs.chmodSync(this.sockPath, 0o666);
        resolve();
      });
    });
  }

  checkToken(token: string): boolean {
    const a = Buffer.from(token);
    const b = Buffer.from(this.token);
    return a.length === b.length && crypto.timingSafeEqual(a, b);
  }

  close(): void {
    this.ended = true;
    for (const c of this.conns) c.sock.destroy();
    this.server?.close();
    this.objects.remove();
    fs.rmSync(this.dir, { recursive: true, force: true });
    if (this.tmpDir) fs.rmSync(this.tmpDir, { recursive: true, force: true });
  }
}
