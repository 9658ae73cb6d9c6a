/**
 * Runs in-job tasks on this node: a queue per resource shape, placement against the node's own
 * ledger (spilling to the head what another node can take now, or what this node never could),
 * warm workers reused across tasks, and actors, each a dedicated worker whose calls run one at a
 * time in the order they arrive.
 */
import type { ErrorInfo, Usage } from '../../shared/protocol/index.js';
import type { Logger } from '../../shared/log.js';
import { fitsUsage, takeFromUsage, type Holding, type NodeLedger } from './ledger.js';
import type { JobState } from './jobState.js';
import { errorValue, type ObjValue } from './objects.js';
import { depError, shapeKey, type Task, type WorkerProc } from './types.js';
import { launchWorker, type LaunchDeps } from './workerLaunch.js';
import { LineSplitter } from './lines.js';
import { ActorHost } from './actors.js';

export interface ExecutorHooks {
  finished(task: Task, value: ObjValue): void;
  spill(task: Task): void;
  actorPlaced(job: JobState, actorId: string): void;
  output(job: JobState, stream: 'stdout' | 'stderr', data: Buffer): void;
  /** Free resources on other nodes, as last heard from the head. */
  remoteFree(): Usage[];
  /** Tasks wait here that another node might take: hear from the head again soon. */
  waiting(): void;
}

interface JobTaskWaiter {
  fits: () => Holding | null;
  resolve: (h: Holding) => void;
}

const IDLE_WORKER_MS = 5 * 60_000;

export class Executor {
  private readonly queues = new Map<string, Task[]>();
  private readonly jobWaiters: JobTaskWaiter[] = [];
  private pumping = false;
  private readonly reaper: NodeJS.Timeout;
  private readonly stopping = new AbortController();
  readonly actors: ActorHost;

  constructor(
    readonly ledger: NodeLedger,
    private readonly launch: LaunchDeps,
    private readonly hooks: ExecutorHooks,
    private readonly killGraceMs: number,
    private readonly log: Logger,
  ) {
    this.actors = new ActorHost({ ledger, hooks, killGraceMs, startWorker: (j, t, k, a) => this.startWorker(j, t, k, a), send: (w, t) => this.send(w, t), pump: () => this.pump() });
    this.reaper = setInterval(() => this.reapIdle(), 30_000);
    this.reaper.unref();
  }

  /** A job task the head placed here waits until the node really has its resources. */
  holdJobTask(fits: () => Holding | null, signal: AbortSignal): Promise<Holding> {
    const now = fits();
    if (now) return Promise.resolve(now);
    return new Promise((resolve, reject) => {
      const w: JobTaskWaiter = { fits, resolve };
      this.jobWaiters.push(w);
      signal.addEventListener('abort', () => {
        const i = this.jobWaiters.indexOf(w);
        if (i >= 0) this.jobWaiters.splice(i, 1);
        reject(new Error('aborted'));
      });
    });
  }

  enqueue(task: Task): void {
    const err = depError(task);
    if (task.spec.kind === 'actor_create') this.actors.expect(task, err);
    if (err) return this.finish(task, err);
    const key = shapeKey(task.lang, task.spec.resources, []);
    let q = this.queues.get(key);
    if (!q) this.queues.set(key, (q = []));
    q.push(task);
    this.pump();
  }

  /** Place what can be placed: job tasks first, then each shape's queue in order. */
  pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (this.jobWaiters.length > 0) {
        const w = this.jobWaiters[0];
        const h = w?.fits();
        if (!w || !h) break;
        this.jobWaiters.shift();
        w.resolve(h);
      }
      if (this.jobWaiters.length > 0) return;
      let remote: Usage[] | null = null;
      let spillable = false;
      for (const [key, q] of this.queues) {
        while (q.length > 0) {
          const task = q[0] as Task;
          if (task.job.ended) {
            q.shift();
            continue;
          }
          const req = task.spec.resources;
          const h = this.ledger.tryTake(req, task.job.jobId);
          if (h) {
            q.shift();
            task.holding = h;
            this.dispatch(task);
            continue;
          }
          if (task.origin !== 'local') break;
          remote ??= this.hooks.remoteFree();
          const never = !this.ledger.couldEverFit(req);
          const elsewhere = remote.find((f) => fitsUsage(f, req));
          if (!never && !elsewhere) {
            spillable ||= remote.length > 0;
            break;
          }
          if (elsewhere) takeFromUsage(elsewhere, req);
          q.shift();
          this.hooks.spill(task);
        }
        if (q.length === 0) this.queues.delete(key);
      }
      if (spillable) this.hooks.waiting();
    } finally {
      this.pumping = false;
    }
  }

  private dispatch(task: Task): void {
    const job = task.job;
    if (task.spec.kind === 'task') {
      job.counts.pending = Math.max(0, job.counts.pending - 1);
      job.counts.running++;
      task.dispatched = true;
    }
    if (task.spec.kind === 'actor_create') return this.actors.create(task);
    const key = shapeKey(task.lang, task.spec.resources, task.holding?.gpuIds ?? []);
    for (const w of job.workers) {
      if (w.state === 'idle' && w.key === key && w.actorId === null) return this.run(w, task);
    }
    this.startWorker(job, task, key, null);
  }

  startWorker(job: JobState, task: Task, key: string, actorId: string | null): WorkerProc {
    const w: WorkerProc = {
      id: `w${++job.workerSeq}`,
      job,
      lang: task.lang,
      key,
      req: task.spec.resources,
      gpuIds: task.holding?.gpuIds ?? [],
      actorId,
      state: 'starting',
      conn: null,
      handle: null,
      task: null,
      first: task,
      idleSince: Date.now(),
    };
    job.workers.add(w);
    const label = actorId ? `${task.spec.name.replace(/\.__init__$/, '')} actor` : `worker ${w.id}`;
    const out = { stdout: new LineSplitter(`(${label}) `), stderr: new LineSplitter(`(${label}) `) };
    launchWorker(this.launch, job, { workerId: w.id, lang: w.lang, req: w.req, gpuIds: w.gpuIds, signal: this.stopping.signal, output: (t) => this.hooks.output(job, 'stdout', Buffer.from(t)) })
      .then(({ handle, cleanup }) => {
        w.handle = handle;
        for (const s of ['stdout', 'stderr'] as const) {
          handle[s].on('data', (d: Buffer) => this.hooks.output(job, s, out[s].push(d)));
        }
        if (w.state === 'dead' || job.ended) void handle.terminate(this.killGraceMs);
        void handle.exited.then((exit) => {
          cleanup();
          for (const s of ['stdout', 'stderr'] as const) {
            const rest = out[s].flush();
            if (rest.length) this.hooks.output(job, s, rest);
          }
          this.workerGone(w, `exit code ${exit.code ?? exit.signal ?? '?'}${exit.oom ? ', killed for exceeding its memory limit' : ''}`);
        });
      })
      .catch((err: unknown) => {
        this.log.warn({ err: (err as Error).message, job: job.jobId }, 'could not start an in-job worker');
        this.workerGone(w, `could not be started: ${(err as Error).message}`, false);
      });
    return w;
  }

  /** A worker said hello on the job socket. */
  workerReady(w: WorkerProc): void {
    if (w.state !== 'starting') return;
    w.state = 'idle';
    const t = w.first;
    w.first = null;
    if (t) {
      if (w.actorId) this.send(w, t);
      else this.run(w, t);
    }
  }

  private run(w: WorkerProc, task: Task): void {
    w.state = 'busy';
    w.task = task;
    task.worker = w;
    this.send(w, task);
  }

  send(w: WorkerProc, task: Task): void {
    void this.executeMessage(task).then(
      ({ header, payload }) => w.conn?.send(header, payload),
      (err: unknown) => this.result(w, { ok: false, error: info('ObjectLostError', `an argument could not be fetched: ${(err as Error).message}`, task) }, Buffer.alloc(0)),
    );
  }

  private async executeMessage(task: Task): Promise<{ header: unknown; payload: Buffer[] }> {
    const payload = [task.args];
    const deps: unknown[] = [];
    for (const d of task.spec.deps) {
      const v = task.deps.get(d.id);
      if (!v || v.kind === 'error') continue;
      if (v.kind === 'inline') {
        deps.push({ id: d.id, state: 'value', len: v.data.length });
        payload.push(v.data);
      } else {
        deps.push({ id: d.id, state: 'path', len: 0, path: await task.job.objects.localPath(d.id, v) });
      }
    }
    const s = task.spec;
    const header = {
      t: 'execute',
      task: { id: s.id, kind: s.kind, fn: s.fn, name: s.name, actor_id: s.actor_id, method: s.method, args_len: task.args.length, deps, gpu_ids: task.holding?.gpuIds ?? [], attempt: task.attempt },
    };
    return { header, payload };
  }

  /** A worker finished its task. */
  result(w: WorkerProc, msg: { ok: boolean; error?: ErrorInfo; fatal?: boolean }, payload: Buffer): void {
    const task = w.actorId ? (w.job.actors.get(w.actorId)?.busy ?? w.task) : w.task;
    if (!task) return;
    const job = task.job;
    let value: ObjValue;
    if (msg.ok) value = job.objects.store(task.spec.id, payload);
    else value = { kind: 'error', error: msg.error ?? info('TaskError', 'the task failed', task), data: payload };
    if (w.actorId) return this.actors.result(w, task, value, msg.ok);
    w.task = null;
    w.state = 'idle';
    w.idleSince = Date.now();
    task.worker = null;
    if (!msg.ok && task.spec.retry_exceptions && this.retriesLeft(task)) this.retry(task);
    else this.finish(task, value);
    this.pump();
  }

  private retriesLeft(task: Task): boolean {
    return task.spec.max_retries < 0 || task.attempt <= task.spec.max_retries;
  }

  private retry(task: Task): void {
    if (task.holding) this.ledger.release(task.holding);
    task.holding = null;
    task.attempt++;
    if (task.dispatched) {
      task.job.counts.running = Math.max(0, task.job.counts.running - 1);
      task.job.counts.pending++;
      task.dispatched = false;
    }
    this.enqueue(task);
  }

  finish(task: Task, value: ObjValue): void {
    const job = task.job;
    if (task.holding && !(task.spec.kind === 'actor_create' && value.kind !== 'error')) {
      this.ledger.release(task.holding);
      task.holding = null;
    }
    if (task.spec.kind === 'task') {
      if (task.dispatched) job.counts.running = Math.max(0, job.counts.running - 1);
      else job.counts.pending = Math.max(0, job.counts.pending - 1);
      task.dispatched = false;
      if (value.kind === 'error') job.counts.failed++;
      else job.counts.finished++;
    }
    this.hooks.finished(task, value);
    this.pump();
  }

  private workerGone(w: WorkerProc, why: string, started = true): void {
    if (w.state === 'dead') return;
    w.state = 'dead';
    w.job.workers.delete(w);
    const task = w.task ?? w.first;
    w.task = null;
    w.first = null;
    if (w.actorId) {
      const actor = w.job.actors.get(w.actorId);
      if (actor) this.actors.died(actor, `the actor's worker process died (${why})`);
      else if (task) this.finish(task, errorValue('ActorDiedError', `the actor's worker process ${why}`, task.spec.name));
      return;
    }
    if (task && w.job.ended && task.holding) this.ledger.release(task.holding);
    if (!task || w.job.ended) return;
    task.worker = null;
    if (started && this.retriesLeft(task)) {
      this.log.info({ task: task.spec.name, attempt: task.attempt }, 'in-job worker died; retrying its task');
      this.retry(task);
    } else {
      this.finish(task, errorValue('WorkerCrashedError', `the worker running ${task.spec.name} ${started ? 'died' : ''} (${why})${started ? `; attempt ${task.attempt} of ${task.spec.max_retries + 1}` : ''}`, task.spec.name));
    }
  }

  blocked(w: WorkerProc, on: boolean): void {
    const h = w.actorId ? w.job.actors.get(w.actorId)?.holding : w.task?.holding;
    if (!h) return;
    if (on) this.ledger.lend(h);
    else this.ledger.reclaim(h);
    if (on) this.pump();
  }

  // ---- lifecycle ------------------------------------------------------------------------------

  /**
   * The job ended: its workers and actors go, its queued tasks are dropped, and everything its
   * in-job work holds goes back now, whatever state each task was in (queued, waiting for a
   * worker to start, running, blocked, an actor's).
   */
  async endJob(job: JobState): Promise<void> {
    job.ended = true;
    for (const q of this.queues.values()) for (let i = q.length - 1; i >= 0; i--) if (q[i]?.job === job) q.splice(i, 1);
    for (const a of job.actors.values()) {
      a.holding = null;
      a.dead ??= { type: 'ActorDiedError', message: 'the job ended', traceback: '', task: a.name };
    }
    const waits: Promise<unknown>[] = [];
    for (const w of [...job.workers]) {
      for (const t of [w.task, w.first]) if (t) t.holding = null;
      if (w.handle) waits.push(w.handle.terminate(this.killGraceMs));
    }
    this.ledger.releaseOwner(job.jobId);
    this.pump();
    await Promise.allSettled(waits);
  }

  private reapIdle(): void {
    const now = Date.now();
    // Workers idle for long are stopped; a later task starts a new one.
    for (const w of this.allWorkers()) {
      if (w.state === 'idle' && w.actorId === null && now - w.idleSince > IDLE_WORKER_MS) {
        w.state = 'dead';
        w.job.workers.delete(w);
        void w.handle?.terminate(this.killGraceMs);
      }
    }
  }

  private allWorkers(): WorkerProc[] {
    return this.workerSource?.() ?? [];
  }

  workerSource: (() => WorkerProc[]) | null = null;

  close(): void {
    clearInterval(this.reaper);
    this.stopping.abort();
  }
}

function info(type: string, message: string, task: Task): ErrorInfo {
  return { type, message, traceback: '', task: task.spec.name };
}
