import type { Db } from '../db/index.js';
import type { ConcurrencyPolicy, JobStatus, ScheduleRun } from '../../shared/protocol/index.js';

export interface ScheduleRow {
  name: string;
  cron: string;
  timezone: string;
  concurrency: ConcurrencyPolicy;
  starting_deadline_s: number | null;
  suspended: number;
  job: string;
  definition_hash: string;
  created_at: number;
  updated_at: number;
  next_run_at: number | null;
  successful_jobs_history_limit: number;
  failed_jobs_history_limit: number;
}

export interface NewRun {
  schedule: string;
  scheduled_at: number;
  fired_at: number;
  trigger_kind: ScheduleRun['trigger'];
  action: ScheduleRun['action'];
  job_id: string | null;
  replaced: string;
  detail: string | null;
}

interface RunRow extends NewRun {
  seq: number;
  job_status: JobStatus | null;
  job_exit_code: number | null;
}

/** Runs kept per schedule; older history is dropped as new runs are recorded. */
export const RUN_HISTORY_LIMIT = 1000;

function toRun(r: RunRow): ScheduleRun {
  return {
    seq: r.seq,
    schedule: r.schedule,
    scheduled_at: r.scheduled_at,
    fired_at: r.fired_at,
    trigger: r.trigger_kind,
    action: r.action,
    job_id: r.job_id,
    job_status: r.job_status,
    job_exit_code: r.job_exit_code,
    replaced: JSON.parse(r.replaced) as string[],
    detail: r.detail,
  };
}

/** Prepared statements for schedules and their run history. */
export function schedulesRepo(db: Db) {
  const insert = db.prepare(`
    INSERT INTO schedules (name, cron, timezone, concurrency, starting_deadline_s, suspended, job, definition_hash,
      created_at, updated_at, next_run_at, successful_jobs_history_limit, failed_jobs_history_limit)
    VALUES (@name, @cron, @timezone, @concurrency, @starting_deadline_s, @suspended, @job, @definition_hash,
      @created_at, @updated_at, @next_run_at, @successful_jobs_history_limit, @failed_jobs_history_limit)`);
  const replace = db.prepare(`
    UPDATE schedules SET cron = @cron, timezone = @timezone, concurrency = @concurrency,
      starting_deadline_s = @starting_deadline_s, suspended = @suspended, job = @job,
      definition_hash = @definition_hash, updated_at = @updated_at, next_run_at = @next_run_at,
      successful_jobs_history_limit = @successful_jobs_history_limit, failed_jobs_history_limit = @failed_jobs_history_limit
    WHERE name = @name`);
  const get = db.prepare('SELECT * FROM schedules WHERE name = ?');
  const all = db.prepare('SELECT * FROM schedules ORDER BY name');
  const historyLimits = db.prepare('SELECT name, successful_jobs_history_limit AS successful, failed_jobs_history_limit AS failed FROM schedules');
  const due = db.prepare('SELECT * FROM schedules WHERE suspended = 0 AND next_run_at IS NOT NULL AND next_run_at <= ? ORDER BY next_run_at');
  const earliestAfter = db.prepare('SELECT MIN(next_run_at) AS at FROM schedules WHERE suspended = 0 AND next_run_at > ?');
  const setState = db.prepare('UPDATE schedules SET suspended = ?, next_run_at = ?, updated_at = ? WHERE name = ?');
  const setNext = db.prepare('UPDATE schedules SET next_run_at = ? WHERE name = ?');
  const remove = db.prepare('DELETE FROM schedules WHERE name = ?');
  const insertRun = db.prepare(`
    INSERT INTO schedule_runs (schedule, scheduled_at, fired_at, trigger_kind, action, job_id, replaced, detail)
    VALUES (@schedule, @scheduled_at, @fired_at, @trigger_kind, @action, @job_id, @replaced, @detail)`);
  const pruneRuns = db.prepare(`
    DELETE FROM schedule_runs WHERE schedule = ? AND seq <= (
      SELECT seq FROM schedule_runs WHERE schedule = ? ORDER BY seq DESC LIMIT 1 OFFSET ${RUN_HISTORY_LIMIT})`);
  const runSelect = `
    SELECT r.*, j.status AS job_status, j.exit_code AS job_exit_code
    FROM schedule_runs r LEFT JOIN jobs j ON j.id = r.job_id`;
  const runs = db.prepare(`${runSelect} WHERE r.schedule = ? ORDER BY r.seq DESC LIMIT ?`);
  const runByJob = db.prepare(`${runSelect} WHERE r.schedule = ? AND r.job_id = ? ORDER BY r.seq DESC LIMIT 1`);
  const lastRun = db.prepare(`${runSelect} WHERE r.schedule = ? AND r.action != 'missed' ORDER BY r.seq DESC LIMIT 1`);
  const activeJobs = db.prepare(
    "SELECT id, stop_requested FROM jobs WHERE schedule = ? AND status IN ('PENDING', 'RUNNING') ORDER BY seq",
  );

  return {
    insert: (row: ScheduleRow) => insert.run(row),
    replace: (row: Omit<ScheduleRow, 'created_at'>) => replace.run(row),
    get: (name: string) => get.get(name) as ScheduleRow | undefined,
    all: () => all.all() as ScheduleRow[],
    /** How many finished jobs each schedule keeps, by outcome. */
    historyLimits: () => historyLimits.all() as { name: string; successful: number; failed: number }[],
    due: (now: number) => due.all(now) as ScheduleRow[],
    /** The earliest due time of an active schedule strictly after `now`. */
    earliestAfter: (now: number) => (earliestAfter.get(now) as { at: number | null }).at,
    setState: (name: string, suspended: boolean, nextRunAt: number | null, at: number) => setState.run(suspended ? 1 : 0, nextRunAt, at, name),
    setNext: (name: string, nextRunAt: number | null) => setNext.run(nextRunAt, name),
    remove: (name: string) => remove.run(name).changes > 0,
    insertRun(run: NewRun): number {
      const seq = Number(insertRun.run(run).lastInsertRowid);
      pruneRuns.run(run.schedule, run.schedule);
      return seq;
    },
    runs: (name: string, limit: number) => (runs.all(name, limit) as RunRow[]).map(toRun),
    runByJob: (name: string, jobId: string) => {
      const r = runByJob.get(name, jobId) as RunRow | undefined;
      return r ? toRun(r) : null;
    },
    lastRun: (name: string) => {
      const r = lastRun.get(name) as RunRow | undefined;
      return r ? toRun(r) : null;
    },
    /** Its jobs that are PENDING or RUNNING, and whether each is already being stopped. */
    activeJobs: (name: string) => (activeJobs.all(name) as { id: string; stop_requested: number }[]).map((j) => ({ id: j.id, stopping: j.stop_requested === 1 })),
  };
}

export type SchedulesRepo = ReturnType<typeof schedulesRepo>;
