/**
 * The job and task state machine. Every transition is one SQLite transaction; the in-memory
 * LiveState follows the database and is rebuilt from it if a transaction ever fails.
 */
import { EventEmitter } from 'node:events';
import type { Logger } from '../shared/log.js';
import type { AgentEvent, ExitOutcome, JobErrorType, JobStatus, TaskRef } from '../shared/protocol/index.js';
import { applyPlacement } from '../shared/resources.js';
import type { Store } from './db/index.js';
import type { LogStore } from './logStore.js';
import { planPlacements } from './scheduler.js';
import { LiveState, type LiveJob, type LiveTask } from './state.js';

export interface EngineOptions {
  leaseMs: number;
  starvationMs: number;
}

interface Verdict {
  state: 'SUCCEEDED' | 'FAILED' | 'STOPPED';
  errorType: JobErrorType | null;
  message: string | null;
  retryable: boolean;
}

const MESSAGE_TAIL_BYTES = 2000;

export interface EngineEvents {
  job: [jobId: string, status: JobStatus];
}

export class Engine extends EventEmitter<EngineEvents> {
  readonly live = new LiveState();
  private scheduled = false;
  private wakeTimer: NodeJS.Timeout | null = null;
  /** Time from a task becoming eligible to its assignment, for metrics. */
  onPlaced: ((waitMs: number) => void) | null = null;
  /** A job is being stopped or failed: its in-job work on every node must go. */
  onStopping: ((jobId: string) => void) | null = null;

  constructor(
    readonly store: Store,
    readonly logs: LogStore,
    private readonly opts: EngineOptions,
    private readonly log: Logger,
  ) {
    super();
    this.setMaxListeners(0);
  }

  load(): void {
    this.live.load(this.store, this.opts.leaseMs, Date.now());
  }

  /** Run `fn` in one transaction; if it fails, the memory view is rebuilt from the database. */
  transact<T>(fn: () => T): T {
    try {
      return this.store.tx(fn);
    } catch (err) {
      this.log.error({ err }, 'transaction failed; reloading live state from the database');
      this.load();
      throw err;
    }
  }

  /** Ask for a scheduling pass soon; many triggers in one tick give one pass. */
  requestSchedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      // A pass run directly since (schedule()) already placed what this one would.
      if (this.scheduled) this.schedule();
    });
  }

  /**
   * One scheduling pass. Nodes that got work are woken, except `answering`: the node whose
   * report is being answered, whose answer carries its new assignments.
   */
  schedule(answering?: string): void {
    this.scheduled = false;
    const now = Date.now();
    const pass = planPlacements(this.live, now, this.opts.starvationMs);
    if (this.wakeTimer) clearTimeout(this.wakeTimer);
    this.wakeTimer = null;
    if (pass.nextWakeAt !== null) {
      this.wakeTimer = setTimeout(() => this.requestSchedule(), Math.max(0, pass.nextWakeAt - now) + 5);
      this.wakeTimer.unref();
    }
    if (pass.placements.length === 0) return;
    const woken = new Set<string>();
    this.transact(() => {
      for (const p of pass.placements) {
        const t = p.task;
        const job = this.live.jobs.get(t.jobId);
        const node = this.live.nodes.get(p.nodeId);
        if (!job || !node) continue;
        const logStart = this.logs.size(t.jobId, t.idx);
        if (!this.store.tasks.assign(t.jobId, t.idx, t.attempt + 1, p.nodeId, p.gpuIds, logStart, now)) continue;
        t.state = 'ASSIGNED';
        t.attempt += 1;
        t.nodeId = p.nodeId;
        t.gpuIds = p.gpuIds;
        t.logStart = logStart;
        t.reason = null;
        this.live.dequeue(t);
        applyPlacement(node.free, job.request, p.gpuIds, -1);
        node.running.add(t.id);
        woken.add(p.nodeId);
        this.onPlaced?.(now - Math.max(t.waitingSince, t.notBefore));
      }
    });
    for (const id of woken) if (id !== answering) this.live.nodes.get(id)?.wake?.();
  }

  /** Apply one agent event. Returns false when it is stale (old attempt or finished task). */
  applyEvent(nodeId: string, ev: AgentEvent): boolean {
    const task = this.live.tasks.get(ev.task_id);
    if (!task || task.attempt !== ev.attempt || task.nodeId !== nodeId) return false;
    if (ev.type === 'started') {
      if (task.state !== 'ASSIGNED') return false;
      this.store.tasks.start(task.jobId, task.idx, task.attempt, ev.at);
      task.state = 'RUNNING';
      const job = this.live.jobs.get(task.jobId);
      if (job && job.status === 'PENDING' && this.store.jobs.setRunning(job.id, ev.at, nodeId)) {
        job.status = 'RUNNING';
        this.emit('job', job.id, 'RUNNING');
      }
      return true;
    }
    this.endAttempt(task, ev.outcome, ev.exit_code, ev.signal, ev.message, ev.at);
    return true;
  }

  /** The node holding `task` is gone: its attempt ends as lost. */
  taskLost(task: LiveTask, reason: string, at: number): void {
    this.endAttempt(task, 'lost', null, null, reason, at);
  }

  private verdict(job: LiveJob, task: LiveTask, outcome: ExitOutcome | 'lost', exitCode: number | null, signal: string | null, message: string | null): Verdict {
    if (outcome === 'exited' && exitCode === 0) return { state: 'SUCCEEDED', errorType: null, message: null, retryable: false };
    if (job.stopRequested) return { state: 'STOPPED', errorType: 'STOPPED_BY_USER', message: 'stopped by the user', retryable: false };
    if (job.failedTask !== null && job.failedTask !== task.idx) {
      return { state: 'STOPPED', errorType: null, message: `cancelled because task ${job.failedTask} failed`, retryable: false };
    }
    switch (outcome) {
      case 'exited':
        return { state: 'FAILED', errorType: 'ENTRYPOINT_FAILED', message: `exited with code ${exitCode}`, retryable: true };
      case 'signaled':
        return { state: 'FAILED', errorType: 'ENTRYPOINT_FAILED', message: `killed by ${signal ?? 'a signal'}`, retryable: true };
      case 'oom':
        return { state: 'FAILED', errorType: 'OOM_KILLED', message: message ?? 'killed for using more memory than it requested', retryable: true };
      case 'lost':
        return { state: 'FAILED', errorType: 'NODE_LOST', message: message ?? 'its node was lost', retryable: true };
      case 'timeout':
        return { state: 'FAILED', errorType: 'TIMEOUT', message: message ?? `timed out after ${job.timeoutS}s`, retryable: false };
      case 'setup_failed':
        return { state: 'FAILED', errorType: 'RUNTIME_ENV_SETUP_FAILED', message: message ?? 'runtime environment setup failed', retryable: false };
      case 'sandbox_unavailable':
        return { state: 'FAILED', errorType: 'SANDBOX_UNAVAILABLE', message: message ?? 'the node cannot provide the required sandbox', retryable: false };
      case 'spawn_failed':
        return { state: 'FAILED', errorType: 'ENTRYPOINT_FAILED', message: message ?? 'the process could not be started', retryable: false };
      case 'killed':
        return { state: 'FAILED', errorType: 'ENTRYPOINT_FAILED', message: message ?? 'killed by its agent', retryable: false };
    }
  }

  private endAttempt(task: LiveTask, outcome: ExitOutcome | 'lost', exitCode: number | null, signal: string | null, message: string | null, at: number): void {
    const job = this.live.jobs.get(task.jobId);
    if (!job) return;
    const v = this.verdict(job, task, outcome, exitCode, signal, message);
    this.store.tasks.endAttempt({
      job_id: task.jobId,
      idx: task.idx,
      attempt: task.attempt,
      ended_at: at,
      outcome,
      exit_code: exitCode,
      error_type: v.errorType,
      message: v.message,
    });
    this.live.release(task);
    if (v.state === 'FAILED' && v.retryable && task.attempt <= job.maxRetries) {
      const delayMs = job.retryBackoffS * 1000 * 2 ** (task.attempt - 1);
      const notBefore = at + Math.min(delayMs, 300_000);
      this.store.tasks.requeue(task.jobId, task.idx, notBefore, exitCode, v.errorType, v.message);
      this.logs.appendSystem(
        task.jobId,
        task.idx,
        `[raysub] attempt ${task.attempt} failed (${v.errorType}: ${v.message}); retrying in ${(delayMs / 1000).toFixed(1)}s (${task.attempt}/${job.maxRetries} retries used)`,
      );
      task.state = 'PENDING';
      task.nodeId = null;
      task.gpuIds = [];
      task.notBefore = notBefore;
      task.waitingSince = notBefore;
      this.live.enqueue(task);
      this.requestSchedule();
      return;
    }
    if (outcome === 'lost' || (v.state === 'FAILED' && v.errorType !== 'ENTRYPOINT_FAILED')) {
      this.logs.appendSystem(task.jobId, task.idx, `[raysub] ${v.errorType}: ${v.message}`);
    }
    this.finishTask(job, task, v.state, exitCode, v.errorType, v.message, at);
    if (v.state === 'FAILED') this.failJob(job, task, v, exitCode, at);
    this.settleJob(job, at);
    this.requestSchedule();
  }

  private finishTask(job: LiveJob, task: LiveTask, state: Verdict['state'], exitCode: number | null, errorType: string | null, message: string | null, at: number): void {
    this.store.tasks.end({ job_id: job.id, idx: task.idx, state, exit_code: exitCode, error_type: errorType, message, ended_at: at });
    this.live.removeTask(task);
  }

  /** A task failed for good: remember it, cancel what has not started, kill what runs. */
  private failJob(job: LiveJob, task: LiveTask, v: Verdict, exitCode: number | null, at: number): void {
    if (job.failedTask !== null) return;
    const what = job.parallel > 1 ? `task ${task.idx} of ${job.parallel} failed` : 'job failed';
    let message = `${what}: ${v.message}`;
    if (v.errorType === 'ENTRYPOINT_FAILED') {
      const tail = this.logTail(job.id, task.idx);
      if (tail) message += `; last output:\n${tail}`;
    }
    this.store.jobs.setFailedTask(job.id, task.idx, message, v.errorType ?? 'ENTRYPOINT_FAILED', exitCode);
    job.failedTask = task.idx;
    this.cancelOthers(job, `cancelled because task ${task.idx} failed`, at);
    this.onStopping?.(job.id);
  }

  private cancelOthers(job: LiveJob, message: string, at: number): void {
    for (const t of this.live.tasksOfJob(job.id)) {
      if (t.state === 'PENDING') this.finishTask(job, t, 'STOPPED', null, null, message, at);
      else if (t.nodeId) this.live.nodes.get(t.nodeId)?.wake?.();
    }
  }

  private logTail(jobId: string, idx: number): string {
    const size = this.logs.size(jobId, idx);
    const from = Math.max(0, size - MESSAGE_TAIL_BYTES);
    const text = this.logs
      .read(jobId, idx, from, MESSAGE_TAIL_BYTES)
      .map((s) => s.data.toString('utf8'))
      .join('');
    const lines = text.split('\n').filter((l) => l.length > 0);
    return lines.slice(from > 0 ? 1 : 0).slice(-10).join('\n');
  }

  /** When every task of a job is finished, the job takes its final state, once. */
  settleJob(job: LiveJob, at: number): void {
    if (this.live.tasksOfJob(job.id).length > 0) return;
    const row = this.store.jobs.get(job.id);
    if (!row) return;
    let status: JobStatus;
    let message: string | null;
    let errorType: JobErrorType | null;
    let exitCode: number | null;
    if (row.failed_task !== null) {
      status = 'FAILED';
      message = row.message;
      errorType = row.error_type;
      exitCode = row.exit_code;
    } else if (row.stop_requested) {
      status = 'STOPPED';
      message = 'Job was stopped by the user.';
      errorType = 'STOPPED_BY_USER';
      exitCode = null;
    } else {
      status = 'SUCCEEDED';
      message = job.parallel > 1 ? `all ${job.parallel} tasks succeeded` : 'Job finished successfully.';
      errorType = null;
      exitCode = 0;
    }
    this.store.jobs.finish({ id: job.id, status, message, error_type: errorType, exit_code: exitCode, end_time: at });
    this.live.jobs.delete(job.id);
    job.status = status;
    this.emit('job', job.id, status);
  }

  /** Fail a whole job that cannot run at all (no task has started). */
  failUnstarted(job: LiveJob, errorType: JobErrorType, message: string, at: number): void {
    this.store.jobs.setFailedTask(job.id, 0, message, errorType, null);
    job.failedTask = 0;
    for (const t of this.live.tasksOfJob(job.id)) {
      this.logs.appendSystem(job.id, t.idx, `[raysub] ${errorType}: ${message}`);
      this.finishTask(job, t, 'FAILED', null, errorType, message, at);
    }
    this.settleJob(job, at);
  }

  /** Stop a job in any state: pending tasks end now, running ones are killed by their agents. */
  stopJob(jobId: string): boolean {
    const job = this.live.jobs.get(jobId);
    if (!job) return false;
    const at = Date.now();
    this.transact(() => {
      this.store.jobs.requestStop(job.id);
      job.stopRequested = true;
      for (const t of this.live.tasksOfJob(job.id)) {
        if (t.state === 'PENDING') this.finishTask(job, t, 'STOPPED', null, 'STOPPED_BY_USER', 'stopped by the user', at);
        else if (t.nodeId) this.live.nodes.get(t.nodeId)?.wake?.();
      }
      this.settleJob(job, at);
    });
    this.onStopping?.(job.id);
    this.requestSchedule();
    return true;
  }

  /** Which of the tasks an agent holds it must kill: stale attempts, and jobs being stopped. */
  killsFor(nodeId: string, held: readonly TaskRef[]): TaskRef[] {
    const kills: TaskRef[] = [];
    for (const ref of held) {
      const t = this.live.tasks.get(ref.task_id);
      if (!t || t.attempt !== ref.attempt || t.nodeId !== nodeId || t.state === 'PENDING') {
        kills.push(ref);
        continue;
      }
      const job = this.live.jobs.get(t.jobId);
      if (!job || job.stopRequested || job.failedTask !== null) kills.push(ref);
    }
    return kills;
  }
}
