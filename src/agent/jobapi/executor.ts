/**
 * Runs in-job tasks on this node: a queue per resource shape, placement against the node's own
 * ledger (spilling to the head what another node can take now, or what this node never could),
 * warm workers reused across tasks, and actors, each a dedicated worker whose calls run one at a
 * time in the order they arrive.
 */
import { guarded } from '../../shared/boundary.js';
import type { Logger } from '../../shared/log.js';
import type { ErrorInfo, Usage } from '../../shared/protocol/index.js';
import { fromUnits } from '../../shared/resources.js';
import { executeMessage } from './execute.js';
import { fitsUsage, takeFromUsage, type Holding, type NodeLedger } from './ledger.js';
import type { JobState } from './jobState.js';
import { errorValue, type ObjValue } from './objects.js';
import { depError, shapeKey, type Task, type WorkerProc } from './types.js';
import { WorkerSlots } from './slots.js';
import type { LaunchDeps } from './workerLaunch.js';
import { startWorkerProcess, stopWorkerProcess } from './workerProcess.js';
import { ActorHost } from './actors.js';
import { JobTaskWaits } from './jobTaskWaits.js';

export interface ExecutorHooks {
  finished(task: Task, value: ObjValue): void;
  spill(task: Task): void;
  actorPlaced(job: JobState, actorId: string): void;
  output(job: JobState, stream: 'stdout' | 'stderr', data: Buffer): void;
  /** Free resources on other nodes, as last heard from the head. */
  remoteFree(): Usage[];
  /** Tasks wait here that another node might take: hear from the head again soon. */
  waiting(): void;
  /** Every job's workers on this node. */
  allWorkers(): Iterable<WorkerProc>;
}

const IDLE_WORKER_MS = 5 * 60_000;

export class Executor {
  private readonly queues = new Map<string, Task[]>();
  private readonly jobTasks = new JobTaskWaits();
  private pumping = false;
  private readonly reaper: NodeJS.Timeout;
  private readonly stopping = new AbortController();
  readonly actors: ActorHost;
  readonly slots: WorkerSlots;

  constructor(
    readonly ledger: NodeLedger,
    private readonly launch: LaunchDeps,
    private readonly hooks: ExecutorHooks,
    readonly killGraceMs: number,
    private readonly log: Logger,
  ) {
    this.actors = new ActorHost({ ledger, hooks, killGraceMs, startWorker: (j, t, k, a) => this.startWorker(j, t, k, a), send: (w, t) => this.send(w, t), pump: () => this.pump() });
    this.slots = new WorkerSlots(launch.launcher.capacity, fromUnits(ledger.totals.cpus));
    this.reaper = setInterval(guarded(log, 'stopping idle in-job workers', () => this.reapIdle()), 30_000);
    this.reaper.unref();
  }

  /** A job task the head placed here waits until the node really has its resources. */
  holdJobTask(fits: () => Holding | null, signal: AbortSignal): Promise<Holding> {
    return this.jobTasks.wait(fits, signal);
  }

  enqueue(task: Task): void {
    const err = depError(task);
    if (task.spec.kind === 'actor_create') this.actors.expect(task, err);
    if (err) return this.finish(task, err);
    this.queueOf(task).push(task);
    this.pump();
  }

  private queueOf(task: Task): Task[] {
    const key = shapeKey(task.lang, task.spec.resources, []);
    let q = this.queues.get(key);
    if (!q) this.queues.set(key, (q = []));
    return q;
  }

  /** Place what can be placed: job tasks first, then each shape's queue in order. */
  pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    try {
      if (!this.jobTasks.serve()) return;
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
          // It fits: it also needs room for its worker, else it waits holding nothing.
          if (h && !this.slots.canRun(key, task.spec.kind === 'actor_create', task.job.workers, () => this.hooks.allWorkers(), (w) => this.retire(w))) {
            this.ledger.release(h);
            break;
          }
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
      slot: false,
      evicted: false,
      blocked: false,
    };
    job.workers.add(w);
    this.slots.started(w);
    const label = actorId ? `${task.spec.name.replace(/\.__init__$/, '')} actor` : `worker ${w.id}`;
    startWorkerProcess(w, label, {
      launch: this.launch,
      signal: this.stopping.signal,
      killGraceMs: this.killGraceMs,
      log: this.log,
      hooks: {
        output: (j, stream, data) => this.hooks.output(j, stream, data),
        exited: (x, why) => this.workerGone(x, why),
        failed: (x, err) => {
          if (err.code === 'NODE_AT_CAPACITY') return this.noRoom(x);
          this.log.warn({ err: err.message, job: job.jobId }, 'could not start an in-job worker');
          this.workerGone(x, `could not be started: ${err.message}`, false);
        },
      },
    });
    return w;
  }

  /**
   * The launcher had no room for a worker (the node's job tasks took it): its task goes back to the
   * front of its queue, holding nothing, until a worker's process is gone.
   */
  private noRoom(w: WorkerProc): void {
    this.slots.gone(w);
    this.slots.launcherFull();
    // Job tasks may hold the room rather than workers: look again in a moment whatever happens.
    setTimeout(
      guarded(this.log, 'in-job queue', () => {
        this.slots.retry();
        this.pump();
      }),
      1000,
    ).unref();
    w.state = 'dead';
    w.job.workers.delete(w);
    const task = w.first;
    w.first = null;
    if (!task || w.job.ended) return;
    if (w.actorId) return this.workerGone(w, 'could not be started: the node is at capacity', false);
    if (task.holding) this.ledger.release(task.holding);
    task.holding = null;
    if (task.dispatched) {
      task.job.counts.running = Math.max(0, task.job.counts.running - 1);
      task.job.counts.pending++;
      task.dispatched = false;
    }
    this.queueOf(task).unshift(task);
  }

  /** An idle worker goes: stopped, and no task is given to it any more. */
  private retire(w: WorkerProc): void {
    w.state = 'dead';
    w.job.workers.delete(w);
    if (w.handle) stopWorkerProcess(w, this.killGraceMs, this.log);
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
    executeMessage(task).then(
      guarded(this.log, 'sending a task to its worker', ({ header, payload }: Awaited<ReturnType<typeof executeMessage>>) => w.conn?.send(header, payload)),
      guarded(this.log, 'failing a task whose arguments are lost', (err: unknown) =>
        this.result(w, { ok: false, error: info('ObjectLostError', `an argument could not be fetched: ${(err as Error).message}`, task) }, Buffer.alloc(0)),
      ),
    );
  }

  /** The task a worker runs now (an actor's: the call it runs). */
  currentTask(w: WorkerProc): Task | null {
    return w.actorId ? (w.job.actors.get(w.actorId)?.busy ?? w.task) : w.task;
  }

  /** A worker finished its task: its result's bytes, or the value they were already stored as. */
  result(w: WorkerProc, msg: { ok: boolean; error?: ErrorInfo; fatal?: boolean }, payload: Buffer | ObjValue): void {
    const task = this.currentTask(w);
    if (!task) return;
    const job = task.job;
    let value: ObjValue;
    if (!Buffer.isBuffer(payload)) value = payload;
    else if (msg.ok) value = job.objects.store(task.spec.id, payload);
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
    this.slots.gone(w);
    // Its slot is free: a task waiting for room may start now.
    setImmediate(guarded(this.log, 'in-job queue', () => this.pump()));
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
    // A worker that waits lets another start in its place (a task it waits for may need one).
    this.slots.setBlocked(w, on);
    const h = w.actorId ? w.job.actors.get(w.actorId)?.holding : w.task?.holding;
    if (h && on) this.ledger.lend(h);
    else if (h) this.ledger.reclaim(h);
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
      if (w.handle) waits.push(w.handle.terminate(this.killGraceMs).catch(() => undefined));
    }
    this.ledger.releaseOwner(job.jobId);
    this.pump();
    await Promise.allSettled(waits);
  }

  private reapIdle(): void {
    const now = Date.now();
    // Workers idle for long are stopped; a later task starts a new one.
    for (const w of [...this.hooks.allWorkers()]) {
      if (w.state === 'idle' && w.actorId === null && now - w.idleSince > IDLE_WORKER_MS) this.retire(w);
    }
  }

  close(): void {
    clearInterval(this.reaper);
    this.stopping.abort();
  }
}

function info(type: string, message: string, task: Task): ErrorInfo {
  return { type, message, traceback: '', task: task.spec.name };
}
