/**
 * What the agent does with each message a job's process sends on the job socket: a hello, task
 * submissions, puts, gets, a worker's results. Every message is checked before its payload is
 * read (the ids it would take, the worker it claims to be), and a large put or result is written
 * to the job's store as it arrives.
 */
import { guarded } from '../../shared/boundary.js';
import type { Logger } from '../../shared/log.js';
import { returnId, type ClientCall, type ClientMessage, type RefInfo, type SubmitSpec } from '../../shared/protocol/index.js';
import type { Executor } from './executor.js';
import { FrameError, type Frame, type PayloadStream } from './frames.js';
import type { IntakeHooks } from './intake.js';
import type { JobConn, JobState, Task } from './jobState.js';
import { TASK_COST } from './limits.js';
import { errorValue, INLINE_LIMIT, type ObjValue } from './objects.js';

export interface ClientDeps {
  executor: Executor;
  log: Logger;
  me(): string;
  /** A task submitted here: resolve its arguments, then run or relay it. */
  accept(task: Task): void;
  /** A process asked for an actor to be killed (`restart`: restarted if it may be). */
  kill(job: JobState, actorId: string, owner: string, restart: boolean): void;
  /** A process asked a question (`payload`: a handle's bytes). */
  request(conn: JobConn, reqId: number, call: ClientCall, payload: Buffer): void;
  /** A process holds no reference to these objects or actors any more. */
  release(job: JobState, objects: readonly string[], actors: readonly string[]): void;
  cancel(job: JobState, ref: RefInfo, force: boolean): void;
}

/** What the agent holds for a task it has taken in: its record and its arguments. */
export function taskCost(args: Buffer): number {
  return TASK_COST + args.length;
}

export class Clients implements IntakeHooks {
  /** Large payloads being written, per connection, until their frame completes. */
  private readonly uploads = new WeakMap<JobConn, () => ObjValue>();

  constructor(private readonly d: ClientDeps) {}

  check(conn: JobConn, msg: ClientMessage): void {
    const job = conn.job;
    if (job.budget.over) throw new FrameError('LIMIT_EXCEEDED', job.budget.over);
    switch (msg.t) {
      case 'hello': {
        if (conn.role) throw new FrameError('INVALID_MESSAGE', 'hello said twice');
        if (!job.checkToken(msg.token)) throw new FrameError('UNAUTHORIZED', 'invalid job token');
        if (msg.role === 'worker' && !waitingWorker(job, msg.worker_id)) throw new FrameError('UNAUTHORIZED', `no worker ${msg.worker_id ?? '?'} is waiting to connect for this job`);
        return;
      }
      case 'submit': {
        const taken = takenId(job, msg.tasks);
        if (taken) throw new FrameError('DUPLICATE_ID', `object id ${taken} is already in use in this job`);
        return;
      }
      case 'put':
        if (!job.objects.free(msg.id)) throw new FrameError('DUPLICATE_ID', `object id ${msg.id} is already in use in this job`);
        return;
      case 'result':
        if (msg.returns && msg.returns.reduce((a, b) => a + b, 0) !== msg.len) throw new FrameError('INVALID_MESSAGE', 'the sizes of a result\'s returns do not add up to its length');
        if (msg.file && (!msg.ok || msg.returns)) throw new FrameError('INVALID_MESSAGE', 'only a task\'s one value comes in a file');
        if (!conn.worker) throw new FrameError('UNAUTHORIZED', 'only a worker sends results');
        return;
      case 'yield':
        if (!conn.worker) throw new FrameError('UNAUTHORIZED', 'only a worker sends results');
        return;
      default:
        return;
    }
  }

  stream(conn: JobConn, msg: ClientMessage, payloadBytes: number): PayloadStream | null {
    if (payloadBytes <= INLINE_LIMIT) return null;
    let id: string | null = null;
    if (msg.t === 'put') id = msg.id;
    // A result of several values is split once it is in (it is held in memory, counted, meanwhile).
    else if (msg.t === 'result' && msg.ok && !msg.returns && conn.worker) id = this.d.executor.taskOf(conn.worker, msg.task_id)?.spec.id ?? null;
    else if (msg.t === 'yield' && msg.ok && conn.worker && this.d.executor.taskOf(conn.worker, msg.task_id)) id = returnId(msg.task_id, msg.index);
    if (id === null) return null;
    const objects = conn.job.objects;
    // A result for an object that has its value already (a task run twice): read and dropped.
    if (objects.get(id)) return discard();
    const w = objects.writer(id, payloadBytes);
    if (!w) throw new FrameError('LIMIT_EXCEEDED', conn.job.budget.over ?? 'the job is over its share');
    this.uploads.set(conn, () => w.value());
    return w;
  }

  frame(conn: JobConn, f: Frame<ClientMessage>): void {
    const msg = f.msg;
    const job = conn.job;
    // Only a frame whose payload went to a stream has an upload (most frames do not: no lookup).
    const upload = f.streamed ? this.uploads.get(conn) : undefined;
    if (f.streamed) this.uploads.delete(conn);
    switch (msg.t) {
      case 'hello': {
        conn.welcome(msg.role, msg.lang);
        conn.send({ t: 'welcome', node_id: this.d.me(), job_id: job.jobId });
        const w = msg.role === 'worker' ? waitingWorker(job, msg.worker_id) : null;
        if (w) {
          w.conn = conn;
          conn.worker = w;
          this.d.executor.workerReady(w);
        }
        return;
      }
      case 'submit':
        return this.submit(conn, msg.tasks, f.payload);
      case 'put':
        job.objects.claim(msg.id);
        job.objects.resolve(msg.id, msg.file ? job.objects.adopt(msg.id, msg.len) : upload ? upload() : job.objects.store(msg.id, Buffer.from(f.payload)));
        return;
      case 'get':
        for (const r of msg.refs) {
          // Asked once is answered once: asking again for the same id adds nothing.
          if (conn.asked.has(r.id)) continue;
          conn.asked.add(r.id);
          job.objects.onReady(r.id, r.owner, guarded(this.d.log, 'answering a get', (v: ObjValue) => this.push(conn, r.id, v, true)));
        }
        return;
      case 'result': {
        const task = conn.worker ? this.d.executor.taskOf(conn.worker, msg.task_id) : null;
        // A result for a task the worker no longer runs here (its actor restarted, it was cancelled by force): dropped.
        if (conn.worker && task) this.d.executor.result(conn.worker, task, msg, msg.file ? job.objects.adopt(task.spec.id, msg.len) : upload ? upload() : Buffer.from(f.payload));
        return;
      }
      case 'yield': {
        const task = conn.worker ? this.d.executor.taskOf(conn.worker, msg.task_id) : null;
        if (!task) return;
        const data = Buffer.from(f.payload);
        this.d.executor.yielded(task, msg.index, upload ? upload() : msg.ok ? data : { ok: false, error: msg.error ?? { type: 'TaskError', message: 'the generator failed', traceback: '', task: task.spec.name }, data });
        return;
      }
      case 'request':
        return this.d.request(conn, msg.req_id, msg.call, Buffer.from(f.payload));
      case 'release':
        for (const id of msg.objects) conn.asked.delete(id);
        return this.d.release(job, msg.objects, msg.actors);
      case 'cancel':
        return this.d.cancel(job, msg.ref, msg.force);
      case 'blocked':
      case 'unblocked':
        if (conn.worker) this.d.executor.blocked(conn.worker, msg.t === 'blocked');
        return;
      case 'kill_actor':
        return this.d.kill(job, msg.actor.id, msg.actor.owner, msg.restart === true);
    }
  }

  closed(conn: JobConn): void {
    const w = conn.worker;
    if (w && w.state !== 'dead') w.handle?.terminate(this.d.executor.killGraceMs).catch((err: unknown) => this.d.log.warn({ err, worker: w.id }, 'could not stop an in-job worker'));
  }

  private submit(conn: JobConn, specs: readonly SubmitSpec[], payload: Buffer): void {
    const job = conn.job;
    // Tasks a task starts are one deeper than it (an actor's calls count as depth 0).
    const depth = conn.worker ? (conn.worker.task?.depth ?? 0) + 1 : 0;
    let at = 0;
    for (const spec of specs) {
      const slice = payload.subarray(at, at + spec.args_len);
      at += spec.args_len;
      // Each task keeps its own copy, so the frame's buffer goes once read (allocUnsafe and copy:
      // about twice as quick as Buffer.from for a small task's arguments).
      const args = specs.length > 1 ? copyOf(slice) : slice;
      if (!job.budget.hold(taskCost(args), () => `task ${spec.name}`)) throw new FrameError('LIMIT_EXCEEDED', job.budget.over ?? 'over the job share');
      job.objects.claim(spec.id);
      job.objects.onReady(spec.id, '', guarded(this.d.log, 'answering a submission', (v: ObjValue) => this.push(conn, spec.id, v, false)));
      const task: Task = { job, spec, args, lang: conn.lang, attempt: 1, origin: 'local', ownerNode: this.d.me(), deps: new Map(), holding: null, worker: null, dispatched: false, charged: taskCost(args), depth };
      if (spec.kind === 'task') job.counts.pending++;
      this.d.accept(task);
    }
  }

  /** Send an object's state to a client; large objects held elsewhere are fetched only when asked for. */
  push(conn: JobConn, id: string, v: ObjValue, fetch: boolean): void {
    if (conn.closed) return;
    if (v.kind === 'inline') return conn.resolved({ id, state: 'value', len: v.data.length }, v.data);
    if (v.kind === 'error') return conn.resolved({ id, state: 'error', len: v.data.length, error: v.error }, v.data);
    if (v.node !== this.d.me() && !fetch) return conn.resolved({ id, state: 'remote', len: v.size });
    conn.job.objects.localPath(id, v, true).then(
      guarded(this.d.log, 'answering a get', (p: string) => conn.resolved({ id, state: 'path', len: v.size, path: p })),
      guarded(this.d.log, 'answering a get', (err: unknown) => this.push(conn, id, errorValue('ObjectLostError', `object ${id} could not be fetched from ${v.node}: ${(err as Error).message}`, ''), false)),
    );
  }
}

function waitingWorker(job: JobState, id: string | undefined): Task['worker'] {
  for (const w of job.workers) if (w.id === id && !w.conn && w.state === 'starting') return w;
  return null;
}

/** The first id of `specs` (task ids, and new actors' ids) this job already uses, or that repeats. */
function takenId(job: JobState, specs: readonly SubmitSpec[]): string | null {
  const one = specs.length === 1 ? specs[0] : undefined;
  if (one && one.kind !== 'actor_create') return job.objects.free(one.id) ? null : one.id;
  const seen = new Set<string>();
  const actors = new Set<string>();
  for (const s of specs) {
    if (seen.has(s.id) || !job.objects.free(s.id)) return s.id;
    seen.add(s.id);
    if (s.kind !== 'actor_create') continue;
    const id = s.actor_id ?? s.id;
    if (actors.has(id) || job.actorHome.has(id) || job.actors.has(id)) return id;
    actors.add(id);
  }
  return null;
}

function copyOf(b: Buffer): Buffer {
  const c = Buffer.allocUnsafe(b.length);
  b.copy(c);
  return c;
}

function discard(): PayloadStream {
  return { write: () => undefined, end: () => undefined, abort: () => undefined };
}
