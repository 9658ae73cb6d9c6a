/**
 * Part of the engine (only engine.ts uses it): job and task transitions besides placement. What
 * happens when an attempt ends, when a job is held or released, when a job it runs after ends. The verdict
 * decides; a retry re-queues the task after its back-off; a task that failed for good fails its
 * job, cancelling what has not started; a job whose tasks are all done takes its final state.
 */
import os from 'node:os';
import { RaysubError } from '../shared/errors.js';
import type { AttemptUsage, JobErrorType, JobStatus } from '../shared/protocol/index.js';
import type { Store } from './db/index.js';
import type { EngineEvents } from './events.js';
import type { LogStore } from './logStore.js';
import { lastLines, rayFailureMessage, rayHeader } from './rayVocabulary.js';
import type { LiveJob, LiveState, LiveTask } from './state.js';
import { retryOf, verdictOf, type AttemptOutcome, type Verdict } from './verdict.js';
import { dependencyFailure, dependencyVerdict } from './dependencies.js';

const MESSAGE_TAIL_BYTES = 2000;
/** How much of a log's end Ray's message of a failed job is taken from (its last 10 lines, at most 20,000 characters). */
const RAY_TAIL_BYTES = 80_000;

/** A process killed by a signal has Ray's exit code for it: minus the signal's number (Python's Popen.returncode). */
export function exitCodeOf(exitCode: number | null, signal: string | null): number | null {
  if (exitCode !== null || signal === null) return exitCode;
  const n = (os.constants.signals as Record<string, number | undefined>)[signal];
  return n === undefined ? null : -n;
}

export interface SettlerHooks {
  /** Emit an engine event once the transaction commits. */
  announce<K extends keyof EngineEvents>(event: K, ...args: EngineEvents[K]): void;
  requestSchedule(): void;
}

export class Settler {
  constructor(
    private readonly live: LiveState,
    private readonly store: Store,
    private readonly logs: LogStore,
    private readonly hooks: SettlerHooks,
  ) {}

  endAttempt(task: LiveTask, outcome: AttemptOutcome, code: number | null, signal: string | null, message: string | null, at: number, usage?: AttemptUsage): void {
    const job = this.live.jobs.get(task.jobId);
    if (!job) return;
    const exitCode = exitCodeOf(code, signal);
    // Past the log cap, the end of the attempt's output goes in before anything reads the log's tail.
    this.logs.endAttempt(task.jobId, task.idx);
    const v = verdictOf(job, { taskIdx: task.idx, outcome, exitCode, signal, message });
    this.store.tasks.endAttempt({
      job_id: task.jobId,
      idx: task.idx,
      attempt: task.attempt,
      ended_at: at,
      outcome,
      exit_code: exitCode,
      error_type: v.errorType,
      message: v.message,
      cpu_s: usage?.cpu_s ?? null,
      peak_memory: usage?.peak_memory ?? null,
    });
    if (usage) this.hooks.announce('attemptEnded', usage);
    this.live.release(task);
    const retry = retryOf(job, task.attempt, v, at);
    if (retry) {
      this.store.tasks.requeue(task.jobId, task.idx, retry.notBefore, exitCode, v.errorType, v.message);
      this.logs.appendSystem(
        task.jobId,
        task.idx,
        `[raysub] attempt ${task.attempt} failed (${v.errorType}: ${v.message}); retrying in ${(retry.delayMs / 1000).toFixed(1)}s (${task.attempt}/${job.maxRetries} retries used)`,
      );
      task.state = 'PENDING';
      task.nodeId = null;
      task.gpuIds = [];
      task.notBefore = retry.notBefore;
      task.waitingSince = retry.notBefore;
      this.live.enqueue(task);
      this.hooks.requestSchedule();
      return;
    }
    if (outcome === 'lost' || (v.state === 'FAILED' && v.errorType !== 'ENTRYPOINT_FAILED')) {
      this.logs.appendSystem(task.jobId, task.idx, `[raysub] ${v.errorType}: ${v.message}`);
    }
    this.finishTask(job, task, v.state, exitCode, v.errorType, v.message, at);
    if (v.state === 'FAILED') this.failJob(job, task, v, exitCode, at);
    this.settleJob(job, at);
    this.hooks.requestSchedule();
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
    const errorType = v.errorType ?? 'ENTRYPOINT_FAILED';
    if (errorType === 'ENTRYPOINT_FAILED') {
      const tail = this.logTail(job.id, task.idx);
      if (tail) message += `; last output:\n${tail}`;
    }
    const logTail = errorType === 'ENTRYPOINT_FAILED' || errorType === 'OOM_KILLED' ? this.rayLogTail(job, task.idx) : '';
    const rayMessage = rayFailureMessage({ submissionId: job.id, errorType, exitCode, detail: v.message ?? what, logTail });
    this.store.jobs.setFailedTask(job.id, task.idx, { message, rayMessage, errorType, exitCode });
    job.failedTask = task.idx;
    this.cancelPending(job, `cancelled because task ${task.idx} failed`, null, at);
    this.hooks.announce('stopping', job.id);
  }

  /**
   * Fail a running job as a whole, for something other than one task's exit (its in-job traffic
   * went over a limit): record why, cancel what has not started, have what runs killed.
   */
  failWhole(job: LiveJob, errorType: JobErrorType, message: string, at: number): void {
    if (job.failedTask !== null || job.stopRequested) return;
    const tasks = this.live.tasksOfJob(job.id);
    const idx = tasks.find((t) => t.state !== 'PENDING')?.idx ?? 0;
    const rayMessage = rayFailureMessage({ submissionId: job.id, errorType, exitCode: null, detail: message, logTail: '' });
    this.store.jobs.setFailedTask(job.id, idx, { message, rayMessage, errorType, exitCode: null });
    job.failedTask = idx;
    for (const t of tasks) this.logs.appendSystem(job.id, t.idx, `[raysub] ${errorType}: ${message}`);
    this.cancelPending(job, `cancelled: ${message}`, errorType, at);
    this.hooks.announce('stopping', job.id);
    this.settleJob(job, at);
  }

  /** End a job's tasks that have not started; wake the nodes of those that run, to kill them. */
  cancelPending(job: LiveJob, message: string, errorType: string | null, at: number): void {
    for (const t of this.live.tasksOfJob(job.id)) {
      if (t.state === 'PENDING') this.finishTask(job, t, 'STOPPED', null, errorType, message, at);
      else if (t.nodeId) this.hooks.announce('wake', t.nodeId);
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

  /**
   * The end of a task's log as Ray's message of a failed job quotes it: Ray's view of the log (its
   * first line, then the job's own output, not raysub's lines).
   */
  private rayLogTail(job: LiveJob, idx: number): string {
    const size = this.logs.size(job.id, idx);
    const from = Math.max(0, size - RAY_TAIL_BYTES);
    const segments = this.logs.read(job.id, idx, from, RAY_TAIL_BYTES).filter((s) => s.stream !== 'system');
    let text = Buffer.concat(segments.map((s) => s.data)).toString('utf8');
    if (from > 0) text = text.slice(text.indexOf('\n') + 1);
    else text = rayHeader({ id: job.id, entrypoint: job.entrypoint, start_time: null }, true) + text;
    return lastLines(text);
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
    for (const dep of job.waitingOn) this.live.dependents.get(dep)?.delete(job.id);
    job.status = status;
    this.hooks.announce('job', job.id, status);
    this.resolveDependents(job.id, status, at);
  }

  static notPending(job: LiveJob | undefined, jobId: string, held: boolean): RaysubError {
    return new RaysubError('JOB_NOT_PENDING', `job ${jobId} is ${job?.status ?? 'not pending'}: only a pending job can be ${held ? 'held' : 'released'}`);
  }

  /** Hold or release a pending job. */
  setHeld(job: LiveJob, held: boolean, now: number): void {
    if (!this.store.jobs.setHeld(job.id, held)) throw Settler.notPending(job, job.id, held);
    job.held = held;
    // Time held is not time starved: a released job queues from now.
    if (!held) for (const t of this.live.tasksOfJob(job.id)) if (t.state === 'PENDING') t.waitingSince = Math.max(t.waitingSince, now);
  }

  /**
   * A new job waits on the jobs it runs after that are live; one that already ended without
   * meeting its condition fails it now. True when it failed.
   */
  linkDependencies(job: LiveJob, at: number): boolean {
    for (const dep of this.live.linkDependencies(job)) {
      const status = this.store.jobs.get(dep.id)?.status ?? 'STOPPED';
      if (dependencyVerdict(dep, status) === 'failed') {
        this.failPending(job, 'DEPENDENCY_FAILED', dependencyFailure(dep, status), at);
        return true;
      }
    }
    return false;
  }

  /** Jobs whose dependencies ended and are still being resolved (a chain fails one link at a time, without recursion). */
  private resolving: [jobId: string, status: JobStatus][] | null = null;

  /** A job ended: the jobs that run after it stop waiting on it, or fail as DEPENDENCY_FAILED. */
  private resolveDependents(jobId: string, status: JobStatus, at: number): void {
    if (this.resolving) {
      this.resolving.push([jobId, status]);
      return;
    }
    this.resolving = [[jobId, status]];
    try {
      for (let next = this.resolving.shift(); next; next = this.resolving.shift()) {
        const [id, st] = next;
        for (const waiting of this.live.takeDependents(id)) {
          const dep = waiting.after.find((d) => d.id === id);
          if (!dep) continue;
          waiting.waitingOn.delete(id);
          if (dependencyVerdict(dep, st) === 'failed') this.failPending(waiting, 'DEPENDENCY_FAILED', dependencyFailure(dep, st), at);
        }
      }
    } finally {
      this.resolving = null;
    }
    this.hooks.requestSchedule();
  }

  /**
   * Fail a job whose waiting tasks no node can ever run: they end as UNSCHEDULABLE, and tasks of
   * it that run are killed, as for a task that failed for good.
   */
  failUnschedulable(job: LiveJob, message: string, at: number): void {
    this.failPending(job, 'UNSCHEDULABLE', message, at);
  }

  /**
   * Fail a job's waiting tasks with `errorType` (no node can run them, or a job it runs after did
   * not succeed); tasks of it that run are killed, as for a task that failed for good.
   */
  failPending(job: LiveJob, errorType: JobErrorType, message: string, at: number): void {
    const tasks = this.live.tasksOfJob(job.id);
    const pending = tasks.filter((t) => t.state === 'PENDING');
    const first = pending[0];
    if (!first) return;
    const rayMessage = rayFailureMessage({ submissionId: job.id, errorType, exitCode: null, detail: message, logTail: '' });
    if (job.failedTask === null && this.store.jobs.setFailedTask(job.id, first.idx, { message, rayMessage, errorType, exitCode: null })) job.failedTask = first.idx;
    for (const t of pending) {
      this.logs.appendSystem(job.id, t.idx, `[raysub] ${errorType}: ${message}`);
      this.finishTask(job, t, 'FAILED', null, errorType, message, at);
    }
    if (pending.length < tasks.length) {
      for (const t of tasks) if (t.nodeId) this.hooks.announce('wake', t.nodeId);
      this.hooks.announce('stopping', job.id);
    }
    this.settleJob(job, at);
  }


}
