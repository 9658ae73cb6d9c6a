/**
 * Runs in-job tasks on this node: a queue per resource shape, placement against the node's own
 * ledger (spilling to the head what another node can take now, or what this node never could),
 * warm workers reused across tasks, and actors, each a dedicated worker whose calls run one at a
 * time in the order they arrive.
 */
import { guarded } from '../../shared/boundary.js';
import type { Logger } from '../../shared/log.js';
import { returnId, type Usage } from '../../shared/protocol/index.js';
import { fromUnits } from '../../shared/resources.js';
import { sendTask } from './execute.js';
import { takeFromUsage, type Holding, type NodeLedger } from './ledger.js';
import { placeTask, shapeKey, taskShape, type PlaceContext } from './taskPlacement.js';
import type { JobState} from './jobState.js';
import { depError, enqueueByDepth, type ExecutorHooks, retriesLeft, type Task, type WorkerProc } from './jobState.js';
import { cancelledValue, errorValue, type ObjValue } from './objects.js';
import { WorkerSlots } from './slots.js';
import type { LaunchDeps } from './workerLaunch.js';
import { newWorker, startWorkerProcess, stopWorkerProcess, takeStarting, workerLabel } from './workerProcess.js';
import { resultValue, taskError, yieldValue, type ResultMessage, type YieldedValue } from './results.js';
import { ActorHost } from './actors.js';
import { JobTaskWaits } from './jobTaskWaits.js';

export type { ExecutorHooks } from './jobState.js';

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
    this.actors = new ActorHost({
      ledger,
      log,
      hooks,
      killGraceMs,
      startWorker: (j, t, k, a) => this.startWorker(j, t, k, a),
      send: (w, t) => this.send(w, t),
      cancelRunning: (w, t, force) => this.cancelRunning(w, t, force),
      pump: () => this.pump(),
      gone: (a) => hooks.actorGone(a.job, a.id),
    });
    this.slots = new WorkerSlots(launch.launcher.capacity, fromUnits(ledger.totals.cpus));
    this.reaper = setInterval(guarded(log, 'stopping idle in-job workers', () => this.reapIdle()), 30_000);
    this.reaper.unref();
  }

  /** A job task the head placed here waits until the node really has its resources. */
  holdJobTask(fits: () => Holding | null, signal: AbortSignal): Promise<Holding> {
    return this.jobTasks.wait(fits, signal);
  }

  enqueue(task: Task): void {
    const err = task.cancelled ? cancelledValue(task) : depError(task);
    if (task.spec.kind === 'actor_create') this.actors.expect(task, err);
    if (err) return this.finish(task, err);
    enqueueByDepth(this.queueOf(task), task);
    this.pump();
  }

  private queueKey(task: Task): string {
    // Tasks of a placement group wait for their bundle, not for the node: a queue of their own.
    const p = task.spec.placement;
    return taskShape(task) + (p && 'group' in p ? `|pg:${task.job.jobId}:${p.group}` : '');
  }

  private queueOf(task: Task): Task[] {
    const key = this.queueKey(task);
    let q = this.queues.get(key);
    if (!q) this.queues.set(key, (q = []));
    return q;
  }

  /** Place what can be placed: job tasks first, then each queue in order (see taskPlacement.ts). */
  pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    try {
      if (!this.jobTasks.serve()) return;
      let remote: Usage[] | null = null;
      const ctx: PlaceContext = { ledger: this.ledger, me: this.launch.nodeId(), remoteFree: () => (remote ??= this.hooks.remoteFree()) };
      let spillable = false;
      for (const [key, q] of this.queues) {
        for (let i = 0; i < q.length; ) {
          const task = q[i] as Task;
          if (task.job.ended) {
            q.splice(i, 1);
            continue;
          }
          const d = placeTask(task, ctx);
          if (d.kind === 'skip') {
            i++;
            continue;
          }
          if (d.kind === 'wait') {
            spillable ||= d.spillable;
            break;
          }
          if (d.kind === 'run') {
            // It fits: it also needs room for its worker, else it waits holding nothing.
            const shape = taskShape(task);
            if (!this.slots.canRun(shape, task.spec.kind === 'actor_create', task.job.workers, () => this.hooks.allWorkers(), (w) => this.retire(w))) {
              this.ledger.release(d.holding);
              break;
            }
            q.splice(i, 1);
            task.holding = d.holding;
            if (d.bundle) task.bundle = d.bundle;
            this.dispatch(task);
            continue;
          }
          q.splice(i, 1);
          if (d.kind === 'fail') this.finish(task, errorValue(d.type, d.message, task.spec.name));
          else {
            if (d.took) takeFromUsage(d.took, task.spec.resources);
            this.hooks.spill(task);
          }
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
    const gpuIds = task.holding?.gpuIds ?? [];
    const key = gpuIds.length > 0 ? shapeKey(task.lang, task.spec.resources, gpuIds) : taskShape(task);
    let spare: WorkerProc | null = null;
    for (const w of job.workers) {
      if (w.key !== key || w.actorId !== null) continue;
      if (w.state === 'idle') return this.run(w, task);
      // A worker still starting whose task ran elsewhere meanwhile: it takes this one.
      if (w.state === 'starting' && !w.first) spare ??= w;
    }
    if (spare) spare.first = task;
    else this.startWorker(job, task, key, null);
  }

  startWorker(job: JobState, task: Task, key: string, actorId: string | null): WorkerProc {
    const w = newWorker(job, task, key, actorId);
    this.slots.started(w);
    startWorkerProcess(w, workerLabel(w, task), {
      launch: this.launch,
      signal: this.stopping.signal,
      killGraceMs: this.killGraceMs,
      log: this.log,
      hooks: {
        output: (j, stream, data) => this.hooks.output(j, stream, data),
        exited: (x, why, clean) => this.workerGone(x, why, true, clean),
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
    this.undispatch(task);
    this.queueOf(task).unshift(task);
  }

  /** A task given resources here goes back to waiting: it holds nothing, and counts as pending. */
  private undispatch(task: Task): void {
    if (task.holding) this.ledger.release(task.holding);
    task.holding = null;
    if (task.dispatched) {
      task.job.counts.running = Math.max(0, task.job.counts.running - 1);
      task.job.counts.pending++;
      task.dispatched = false;
    }
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
    // Its task ran on a worker that was free sooner: it takes what waits in the queue.
    if (!t) return this.pump();
    if (w.actorId) return void this.send(w, t);
    this.run(w, t);
  }

  /** Take a task out of its queue (false if it is not queued). */
  dequeue(task: Task): boolean {
    const q = this.queues.get(this.queueKey(task));
    const i = q ? q.indexOf(task) : -1;
    if (!q || i < 0) return false;
    q.splice(i, 1);
    return true;
  }

  cancelRunning(w: WorkerProc, task: Task, force: boolean): void {
    if (force) stopWorkerProcess(w, this.killGraceMs, this.log);
    else w.conn?.send({ t: 'cancel', task_id: task.spec.id, force: false });
  }

  /** Run a task on a worker of its shape (one cancelled while it waited for the worker never runs). */
  private run(w: WorkerProc, task: Task): void {
    if (task.cancelled) return this.finish(task, cancelledValue(task));
    w.state = 'busy';
    w.task = task;
    task.worker = w;
    void this.send(w, task);
  }

  /**
   * Write a task to its worker (resolved once written, or failed for want of its arguments). A
   * task whose arguments are all in memory here is written at once.
   */
  send(w: WorkerProc, task: Task): Promise<void> {
    return sendTask(w, task, this.log, (err) => this.result(w, task, { ok: false, error: taskError('ObjectLostError', `an argument could not be fetched: ${err.message}`, task) }, Buffer.alloc(0)));
  }

  /** The task (or actor call) with this id that a worker runs now, if it runs one. */
  taskOf(w: WorkerProc, taskId: string): Task | null {
    if (w.actorId) return this.actors.runningTask(w, taskId);
    return w.task?.spec.id === taskId ? w.task : null;
  }

  /**
   * A worker finished a task: its result's bytes (split into its values when it has several
   * returns), or the value they were already stored as.
   */
  result(w: WorkerProc, task: Task, msg: ResultMessage, payload: Buffer | ObjValue): void {
    const value = resultValue(task, msg, payload);
    const retryable = msg.retryable !== false && !task.cancelled;
    if (w.actorId) return this.actors.result(w, task, value, msg.ok, retryable);
    w.task = null;
    w.state = 'idle';
    w.idleSince = Date.now();
    task.worker = null;
    // A task dispatched earlier that still waits for its new worker to start runs here now.
    const waiting = takeStarting(w);
    if (waiting) this.run(w, waiting);
    // Either way the queues are looked at again (enqueue and finish pump).
    if (!msg.ok && retryable && task.spec.retry_exceptions && retriesLeft(task)) this.retry(task);
    else this.finish(task, value);
  }

  /** A generator task yielded a value (or its error): the object `<task id>_<index>`. */
  yielded(task: Task, index: number, value: YieldedValue): void {
    const id = returnId(task.spec.id, index);
    this.hooks.item(task, id, yieldValue(task, id, value));
  }

  private retry(task: Task): void {
    this.undispatch(task);
    task.attempt++;
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

  private workerGone(w: WorkerProc, why: string, started = true, clean = false): void {
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
      if (actor && actor.worker === w) {
        // An actor that ended itself, or whose process never started, is not restarted.
        if (clean || !started) actor.final = true;
        this.actors.workerGone(actor, why);
      } else if (!actor && task) this.finish(task, errorValue('ActorDiedError', `the actor's worker process ${why}`, task.spec.name));
      return;
    }
    if (!task || w.job.ended) return;
    task.worker = null;
    if (task.cancelled) return this.finish(task, cancelledValue(task));
    if (started && retriesLeft(task)) {
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
