import type { Db } from './open.js';
import type { TaskState } from '../../shared/protocol/index.js';

export interface TaskRow {
  job_id: string;
  idx: number;
  state: TaskState;
  attempt: number;
  node_id: string | null;
  gpu_ids: string;
  not_before: number;
  log_start: number;
  exit_code: number | null;
  error_type: string | null;
  message: string | null;
  started_at: number | null;
  ended_at: number | null;
}

export interface AttemptRow {
  job_id: string;
  idx: number;
  attempt: number;
  node_id: string | null;
  assigned_at: number;
  started_at: number | null;
  ended_at: number | null;
  outcome: string | null;
  exit_code: number | null;
  error_type: string | null;
  message: string | null;
  /** CPU seconds and peak memory bytes its cgroups counted (null: not counted on its node, or it has not ended). */
  cpu_s: number | null;
  peak_memory: number | null;
}

/** A job's attempts summed up (attempts that ran and ended; null where one of them was not counted). */
export interface UsageTotals {
  attempts: number;
  cpu_s: number | null;
  peak_memory: number | null;
  /** Seconds its attempts ran, added up, and GPU-seconds held (each attempt's GPUs times its run). */
  run_s: number;
  gpu_s: number;
}

/** A job's attempts' usage as SQL sums it (the job list reads the same sums for a whole page). */
export interface UsageSums {
  attempts: number;
  cpu: number | null;
  cpu_n: number;
  peak: number | null;
  peak_n: number;
  run_s: number;
}

/**
 * The sums of a job's attempts that ran and ended, as columns: `a` is the attempts table's alias
 * (with its dot), `as` a prefix for the columns' names.
 */
export function usageSumsSql(a = '', as = ''): string {
  return `COUNT(${a}job_id) AS ${as}attempts, SUM(${a}cpu_s) AS ${as}cpu, COUNT(${a}cpu_s) AS ${as}cpu_n, MAX(${a}peak_memory) AS ${as}peak,
      COUNT(${a}peak_memory) AS ${as}peak_n, COALESCE(SUM(${a}ended_at - ${a}started_at), 0) / 1000.0 AS ${as}run_s`;
}

/** UsageSums as totals: CPU and peak memory only when every attempt counted them; `gpus`: what each task holds. */
export function usageTotalsOf(r: UsageSums, gpus: number): UsageTotals {
  const all = (n: number) => r.attempts > 0 && n === r.attempts;
  return { attempts: r.attempts, cpu_s: all(r.cpu_n) ? r.cpu : null, peak_memory: all(r.peak_n) ? r.peak : null, run_s: r.run_s, gpu_s: r.run_s * gpus };
}

export interface TaskEnd {
  job_id: string;
  idx: number;
  state: TaskState;
  exit_code: number | null;
  error_type: string | null;
  message: string | null;
  ended_at: number;
}

export function tasksRepo(db: Db) {
  const insert = db.prepare("INSERT INTO tasks (job_id, idx, state) VALUES (?, ?, 'PENDING')");
  const get = db.prepare('SELECT * FROM tasks WHERE job_id = ? AND idx = ?');
  const ofJob = db.prepare('SELECT * FROM tasks WHERE job_id = ? ORDER BY idx');
  const active = db.prepare("SELECT * FROM tasks WHERE state IN ('PENDING', 'ASSIGNED', 'RUNNING')");
  const countsOfJob = db.prepare('SELECT state, COUNT(*) AS n FROM tasks WHERE job_id = ? GROUP BY state');
  const assign = db.prepare(`
    UPDATE tasks SET state = 'ASSIGNED', attempt = attempt + 1, node_id = ?, gpu_ids = ?, log_start = ?,
      started_at = NULL, exit_code = NULL, error_type = NULL, message = NULL
    WHERE job_id = ? AND idx = ? AND state = 'PENDING'`);
  const start = db.prepare("UPDATE tasks SET state = 'RUNNING', started_at = ? WHERE job_id = ? AND idx = ? AND attempt = ? AND state = 'ASSIGNED'");
  const end = db.prepare(`
    UPDATE tasks SET state = @state, exit_code = @exit_code, error_type = @error_type, message = @message, ended_at = @ended_at
    WHERE job_id = @job_id AND idx = @idx AND state IN ('PENDING', 'ASSIGNED', 'RUNNING')`);
  const requeue = db.prepare(`
    UPDATE tasks SET state = 'PENDING', node_id = NULL, gpu_ids = '[]', not_before = ?, exit_code = ?, error_type = ?, message = ?
    WHERE job_id = ? AND idx = ?`);
  const insertAttempt = db.prepare(
    'INSERT INTO attempts (job_id, idx, attempt, node_id, assigned_at) VALUES (?, ?, ?, ?, ?)',
  );
  const startAttempt = db.prepare('UPDATE attempts SET started_at = ? WHERE job_id = ? AND idx = ? AND attempt = ?');
  const endAttempt = db.prepare(`
    UPDATE attempts SET ended_at = @ended_at, outcome = @outcome, exit_code = @exit_code, error_type = @error_type, message = @message,
      cpu_s = @cpu_s, peak_memory = @peak_memory
    WHERE job_id = @job_id AND idx = @idx AND attempt = @attempt AND ended_at IS NULL`);
  const attemptsOfJob = db.prepare('SELECT * FROM attempts WHERE job_id = ? ORDER BY idx, attempt');
  const usageOfJob = db.prepare(`SELECT ${usageSumsSql()} FROM attempts WHERE job_id = ? AND started_at IS NOT NULL AND ended_at IS NOT NULL`);

  return {
    insert: (jobId: string, idx: number) => insert.run(jobId, idx),
    get: (jobId: string, idx: number) => get.get(jobId, idx) as TaskRow | undefined,
    ofJob: (jobId: string) => ofJob.all(jobId) as TaskRow[],
    active: () => active.all() as TaskRow[],
    countsOfJob: (jobId: string) => countsOfJob.all(jobId) as { state: TaskState; n: number }[],
    assign(jobId: string, idx: number, attempt: number, nodeId: string, gpuIds: readonly number[], logStart: number, at: number): boolean {
      const ok = assign.run(nodeId, JSON.stringify(gpuIds), logStart, jobId, idx).changes > 0;
      if (ok) insertAttempt.run(jobId, idx, attempt, nodeId, at);
      return ok;
    },
    start(jobId: string, idx: number, attempt: number, at: number): boolean {
      const ok = start.run(at, jobId, idx, attempt).changes > 0;
      if (ok) startAttempt.run(at, jobId, idx, attempt);
      return ok;
    },
    end: (e: TaskEnd) => end.run(e).changes > 0,
    requeue: (jobId: string, idx: number, notBefore: number, exitCode: number | null, errorType: string | null, message: string | null) =>
      requeue.run(notBefore, exitCode, errorType, message, jobId, idx),
    endAttempt: (a: { job_id: string; idx: number; attempt: number; ended_at: number; outcome: string; exit_code: number | null; error_type: string | null; message: string | null; cpu_s?: number | null; peak_memory?: number | null }) =>
      endAttempt.run({ cpu_s: null, peak_memory: null, ...a }),
    /** The job's attempts that ran, summed up; `gpus`: what each of its tasks holds. */
    usageOfJob: (jobId: string, gpus: number): UsageTotals => usageTotalsOf(usageOfJob.get(jobId) as UsageSums, gpus),
    attemptsOfJob: (jobId: string) => attemptsOfJob.all(jobId) as AttemptRow[],
  };
}

export type TasksRepo = ReturnType<typeof tasksRepo>;
