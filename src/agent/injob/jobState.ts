/**
 * One job's in-job state on this agent: its socket (bound into the job's sandboxes), the token
 * its processes present, its objects, warm workers and actors, and its task counts; and the
 * records of its in-job tasks, workers and actors.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { guarded } from '../../shared/boundary.js';
import type { Logger } from '../../shared/log.js';
import type { ErrorInfo, InjobCounts, JobContext, Lang, RelayTask, SubmitSpec, TaskRef, Usage } from '../../shared/protocol/index.js';
import type { Capacity, TaskRequest } from '../../shared/resources.js';
import type { WorkerHandle } from '../launcher.js';
import { removeAside } from '../files/aside.js';
import { JobBudget } from './budget.js';
import { Conn } from './conn.js';
import { FrameError, FrameReader } from './frames.js';
import { Intake, type IntakeHooks } from './intake.js';
import type { Holding } from './ledger.js';
import { MAX_CONNECTIONS, MAX_HELD_BYTES, MAX_STORE_BYTES, MIN_HELD_BYTES, nodeConnectionCap } from './limits.js';
import { JobObjectDirs, type ShmPool } from './objectDirs.js';
import { INLINE_LIMIT, ObjectTable, type ObjValue } from './objects.js';

/** A connection of this job's processes to the agent. */
export type JobConn = Conn<JobState, WorkerProc>;

export interface Task {
  job: JobState;
  spec: SubmitSpec;
  args: Buffer;
  /** Large arguments that came by location: an object in its submitter's store (args is then empty). */
  argsFile?: { id: string; node: string; size: number };
  lang: Lang;
  attempt: number;
  /** 'local': submitted by a client on this node; 'head': placed here by the head for another node's client. */
  origin: 'local' | 'head';
  ownerNode: string;
  deps: Map<string, ObjValue>;
  holding: Holding | null;
  worker: WorkerProc | null;
  /** Counted as running (a plain task that was given resources here). */
  dispatched: boolean;
  /** Bytes of the agent's memory counted against the job for this task (0 once given back). */
  charged: number;
  /** For an actor's creation: tell the submitter's calls where the actor went. */
  decide?: (home: 'local' | 'remote') => void;
  /** It was cancelled (`force`: its worker is killed): it is never run again, nor retried. */
  cancelled?: { force: boolean };
  /** The placement group bundle it holds its resources in (its `holding` is then the bundle's). */
  bundle?: Bundle;
  /** Objects it holds in this node's store until it is done (its arguments). */
  pinned?: readonly string[];
  /** Its resource shape without GPU ids (shapeKey), computed once. */
  shape?: string;
  /** How deep it is nested: 0 for a task of a job's own process (or placed by the head), its submitter's depth + 1 for a task's. */
  depth?: number;
}

/** A placement group's bundle reserved on this node: its tasks and actors take from what it holds. */
export interface Bundle {
  job: JobState;
  group: string;
  index: number;
  /** What the bundle holds on the node's ledger. */
  holding: Holding;
  /** What its tasks and actors have not taken. */
  free: Capacity;
}

export type WorkerState = 'starting' | 'idle' | 'busy' | 'dead';

export interface WorkerProc {
  id: string;
  job: JobState;
  lang: Lang;
  /** Resource shape (and GPUs): a worker only runs tasks that asked for exactly what its limits are. */
  key: string;
  req: TaskRequest;
  gpuIds: number[];
  actorId: string | null;
  state: WorkerState;
  conn: Conn | null;
  handle: WorkerHandle | null;
  task: Task | null;
  /** Task waiting for this worker to come up. */
  first: Task | null;
  idleSince: number;
  /** It holds one of the node's worker slots (until its process is gone). */
  slot: boolean;
  /** Stopped while idle to make room for another worker. */
  evicted: boolean;
  /** Waiting in `get` for now. */
  blocked: boolean;
  /** Functions by value (their objects' ids) already sent to it with a task: it keeps them. */
  functions: Set<string>;
}

export interface Actor {
  id: string;
  job: JobState;
  worker: WorkerProc | null;
  holding: Holding | null;
  queue: Task[];
  /**
   * Calls sent to its worker and not finished, by id, in the order sent (at most `concurrency` run;
   * an actor of one call at a time may have more sent ahead, queued in its worker); its creation
   * while the constructor runs.
   */
  running: Map<string, Task>;
  /** The last call being written to its worker (calls are written in the order sent); null once written. */
  sending?: Promise<void> | null;
  /** Its creation task, run again when it restarts. */
  creation: Task;
  concurrency: number;
  /** Restarts left when its process dies (-1: always). */
  restartsLeft: number;
  ready: boolean;
  dead: ErrorInfo | null;
  name: string;
  /** Its last handle went: it ends once the calls sent before have run. */
  released: boolean;
  /** Its process ends for good next (killed without restart, or it exited itself). */
  final: boolean;
  /** When its current process was started (restarts are spaced). */
  startedAt: number;
}

/** Whether a task (or actor call) may run again after this attempt (`max_retries`; -1: always). */
export function retriesLeft(t: Task): boolean {
  return t.spec.max_retries < 0 || t.attempt <= t.spec.max_retries;
}

/** How far back in a queue a task looks for its own job's shallower tasks to go ahead of. */
const MAX_DEPTH_SCAN = 10_000;

/**
 * Queue a task: ahead of its own job's shallower tasks at the end of the queue (a task waits for
 * the tasks it started, so running those first ends nested work with the fewest workers waiting,
 * as a fork-join pool runs its newest work first), never ahead of another job's task; in
 * submission order among the same depth.
 */
export function enqueueByDepth(q: Task[], t: Task): void {
  const d = t.depth ?? 0;
  let i = q.length;
  for (let n = 0; i > 0 && n < MAX_DEPTH_SCAN; n++) {
    const prev = q[i - 1];
    if (!prev || prev.job !== t.job || (prev.depth ?? 0) >= d) break;
    i--;
  }
  q.splice(i, 0, t);
}

/** A task whose argument is a failed object fails with that object's error, without running. */
export function depError(task: Task): ObjValue | null {
  for (const v of task.deps.values()) if (v.kind === 'error') return v;
  return null;
}

/** A task's arguments stay in its job's store here until it is done (their owner may drop them meanwhile). */
export function pinArgs(task: Task): void {
  task.pinned = task.spec.deps.map((d) => d.id);
  task.job.objects.pin(task.pinned);
}

export function unpinArgs(task: Task): void {
  if (task.pinned) task.job.objects.unpin(task.pinned);
  task.pinned = undefined;
}

/** A task's arguments as they are relayed: inline while small, else by location (a file in this node's store). */
export function relayArgs(task: Task): RelayTask['args'] {
  if (task.argsFile) return task.argsFile;
  if (task.args.length <= INLINE_LIMIT) return task.args.toString('base64');
  // Written once to this node's store, as an object of the agent's own naming.
  const id = `args-${crypto.randomBytes(12).toString('hex')}`;
  const v = task.job.objects.store(id, task.args);
  task.job.objects.claim(id);
  task.job.objects.resolve(id, v);
  if (v.kind !== 'file') return task.args.toString('base64');
  task.argsFile = { id, node: v.node, size: v.size };
  return task.argsFile;
}

/** What the executor tells the rest of the agent. */
export interface ExecutorHooks {
  finished(task: Task, value: ObjValue): void;
  /** One of a task's values before it finished (a generator's yield). */
  item(task: Task, id: string, value: ObjValue): void;
  spill(task: Task): void;
  actorPlaced(job: JobState, actorId: string): void;
  /** An actor placed here is dead for good. */
  actorGone(job: JobState, actorId: string): void;
  output(job: JobState, stream: 'stdout' | 'stderr', data: Buffer): void;
  /** Free resources on other nodes, as last heard from the head. */
  remoteFree(): Usage[];
  /** Tasks wait here that another node might take: hear from the head again soon. */
  waiting(): void;
  /** Every job's workers on this node. */
  allWorkers(): Iterable<WorkerProc>;
}

/**
 * Connections every job holds to this process's job sockets, and how many all of them may: the
 * open-file limit is the process's, so the count is too (nodeConnectionCap).
 */
const connections = { held: 0, cap: nodeConnectionCap() };

/** Longest path a Unix socket may have (sun_path is 108 bytes with its terminating NUL). */
const MAX_SOCKET_PATH = 107;

export interface JobStateDeps {
  nodeId: () => string;
  fetchRemote: (node: string, id: string, dest: string) => Promise<void>;
  askOwner: (owner: string, id: string) => Promise<ObjValue>;
  freeRemote: (node: string, id: string) => void;
  /** The node's shared memory for objects. */
  shm: ShmPool;
  /** The job went over one of its limits here. */
  over: (job: JobState, why: string) => void;
  log: Logger;
}

export class JobState {
  readonly token = crypto.randomBytes(24).toString('hex');
  readonly dir: string;
  readonly sockPath: string;
  readonly objects: ObjectTable;
  readonly ctx: JobContext;
  /** The job's memory request per task (0: none). */
  readonly memory: number;
  readonly budget: JobBudget;
  /** Attempts of this job's own tasks running here: worker output goes to their log. */
  readonly drivers: TaskRef[] = [];
  readonly conns = new Set<JobConn>();
  readonly workers = new Set<WorkerProc>();
  readonly actors = new Map<string, Actor>();
  /** Actors created by this node's clients: where their creation went, once decided. */
  readonly actorHome = new Map<string, Promise<'local' | 'remote'>>();
  /** Calls that reached this node before their actor's creation was placed here. */
  readonly parkedCalls = new Map<string, Task[]>();
  /** Per actor, the end of the chain that keeps one submitter's calls in order. */
  readonly callChains = new Map<string, Promise<void>>();
  /** Actors whose last handle went before they were created here: they end once idle. */
  readonly releasedActors = new Set<string>();
  /** Tasks taken in here and not finished, by id (for cancellation). */
  readonly live = new Map<string, Task>();
  /**
   * Tasks this node handed to the head and has no result for yet (a cancellation follows them
   * there), with the objects they hold here until then (their arguments, fetched from here).
   */
  readonly handedOff = new Map<string, readonly string[]>();
  /** Placement group bundles reserved on this node, by `<group>:<index>`. */
  readonly bundles = new Map<string, Bundle>();
  /** `ray.init(num_cpus=n)`: CPUs (in resource units) its in-job work may hold here at once; null: no limit. */
  cpuLimit: number | null = null;
  readonly counts: InjobCounts = { pending: 0, running: 0, finished: 0, failed: 0, actors_alive: 0, actors_dead: 0 };
  private server: net.Server | null = null;
  private tmpDir: string | null = null;
  ended = false;
  workerSeq = 0;
  /** Worker output on its way through the head, and what was dropped since it could not wait. */
  relayedLogBytes = 0;
  droppedLogBytes = 0;

  private readonly log: Logger;

  constructor(
    readonly jobId: string,
    ctx: JobContext,
    root: string,
    d: JobStateDeps,
  ) {
    this.ctx = ctx;
    this.log = d.log;
    this.memory = ctx.memory ?? 0;
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
    // The agent holds at most the job's memory request for it (but MIN_HELD_BYTES at least), and never more than MAX_HELD_BYTES.
    const held = this.memory > 0 ? Math.max(MIN_HELD_BYTES, Math.min(this.memory, MAX_HELD_BYTES)) : MAX_HELD_BYTES;
    this.budget = new JobBudget(held, storeLimit(this.dir), (why) => d.over(this, why));
    const dirs = new JobObjectDirs(path.join(this.dir, 'objects'), hash, d.shm);
    this.objects = new ObjectTable(dirs, d.nodeId, d.fetchRemote, d.askOwner, this.budget, d.freeRemote);
  }

  /** Directories the job's sandboxes must see (read-only): its socket's and its objects'. */
  get paths(): string[] {
    const { shm, direct } = this.objects.dirs;
    return [this.dir, ...(this.tmpDir ? [this.tmpDir] : []), ...(shm && !direct ? [shm] : [])];
  }

  /** Serve the job's socket; each connection's frames go through an Intake to `hooks`. */
  listen(hooks: IntakeHooks & { closed(c: JobConn): void }): Promise<void> {
    const server = net.createServer(guarded(this.log, 'job socket connection', (sock: net.Socket) => this.serve(sock, hooks)));
    server.on('error', (err) => this.log.warn({ err, job: this.jobId }, 'job socket error'));
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.sockPath, () => {
        try {
          // Any uid may connect (tasks run as uids of their own); the token decides who is served.
          fs.chmodSync(this.sockPath, 0o666);
          resolve();
        } catch (err) {
          reject(err instanceof Error ? err : new Error(String(err)));
        }
      });
    });
  }

  private serve(sock: net.Socket, hooks: IntakeHooks & { closed(c: JobConn): void }): void {
    const conn = new Conn<JobState, WorkerProc>(sock, this, this.log);
    sock.on('error', () => undefined);
    if (this.conns.size >= MAX_CONNECTIONS) {
      conn.refuse('LIMIT_EXCEEDED', `this job already holds ${MAX_CONNECTIONS} connections to its agent`);
      return;
    }
    if (connections.held >= connections.cap) {
      conn.refuse('LIMIT_EXCEEDED', `this node's jobs already hold ${connections.cap} connections to its agent`);
      return;
    }
    this.conns.add(conn);
    connections.held++;
    const intake = new Intake(conn, hooks);
    const reader = new FrameReader(intake);
    sock.on(
      'data',
      guarded(this.log, 'job socket read', (chunk: Buffer) => {
        if (conn.closed) return;
        try {
          reader.push(chunk);
        } catch (err) {
          if (err instanceof FrameError) return conn.refuse(err.code, err.message);
          this.log.warn({ err, job: this.jobId }, 'could not take a frame from a job');
          conn.refuse('INTERNAL', `the agent could not take this frame: ${(err as Error).message}`);
        }
      }),
    );
    sock.on(
      'close',
      guarded(this.log, 'job socket close', () => {
        conn.gone();
        reader.close();
        intake.close();
        if (this.conns.delete(conn)) connections.held--;
        hooks.closed(conn);
      }),
    );
  }

  checkToken(token: string): boolean {
    const a = Buffer.from(token);
    const b = Buffer.from(this.token);
    return a.length === b.length && crypto.timingSafeEqual(a, b);
  }

  close(): void {
    this.ended = true;
    for (const c of this.conns) {
      c.gone();
      c.sock.destroy();
    }
    this.server?.close();
    // Its directory (socket, objects on disk) off the event loop (the job may come back here, and makes it anew).
    removeAside(this.dir, (err) => this.log.warn({ err, job: this.jobId }, "could not remove a job's in-job directory"));
    this.objects.remove();
    if (this.tmpDir) fs.rmSync(this.tmpDir, { recursive: true, force: true });
  }
}

/** Large objects of a job on this disk: MAX_STORE_BYTES, or half the free space now, whichever is less. */
function storeLimit(dir: string): number {
  try {
    const st = fs.statfsSync(dir);
    return Math.min(MAX_STORE_BYTES, Math.floor((st.bavail * st.bsize) / 2));
  } catch {
    return MAX_STORE_BYTES;
  }
}
