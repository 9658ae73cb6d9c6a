import type { Db } from './open.js';
import type { JobErrorType, JobStatus } from '../../shared/protocol/index.js';

export interface JobRow {
  seq: number;
  id: string;
  spec_hash: string;
  entrypoint: string;
  runtime_env: string;
  metadata: string;
  request: string;
  parallel: number;
  max_retries: number;
  retry_backoff_s: number;
  timeout_s: number | null;
  priority: number;
  wait_for_capacity: number;
  /** 1: the memory request is a limit the task is killed above; 0: only what placement counts. */
  memory_limit: number;
  /** 1: the job runs on the head's own node (Ray's default for a driver that asks for nothing). */
  driver_on_head: number;
  schedule: string | null;
  status: JobStatus;
  stop_requested: number;
  failed_task: number | null;
  message: string | null;
  error_type: JobErrorType | null;
  exit_code: number | null;
  created_at: number;
  start_time: number | null;
  end_time: number | null;
  driver_node_id: string | null;
  /** In-job task and actor counts, written when the job ends (JSON), if it ran any. */
  injob_counts: string | null;
  /** Ray's message for a failed job (rayVocabulary.ts); `message` holds raysub's. */
  ray_message: string | null;
  /** 1: held by the user (`job hold`): its tasks are not placed until it is released. */
  held: number;
  /** The jobs it runs after (JSON `[{"id", "any"}]`; any: whatever their end), or null. */
  after_jobs: string | null;
  /** At most this many of its tasks at once (`--max-concurrent`, `%K`), or null. */
  max_concurrent: number | null;
  /** The `--array` spec its tasks' array indices come from (arraySpec.ts); null: the task index itself. */
  array_spec: string | null;
}

export type NewJob = Omit<JobRow, 'seq' | 'stop_requested' | 'failed_task' | 'message' | 'error_type' | 'exit_code' | 'start_time' | 'end_time' | 'driver_node_id' | 'injob_counts' | 'ray_message' | 'held' | 'after_jobs' | 'max_concurrent' | 'array_spec'> & { held?: number; after_jobs?: string | null; max_concurrent?: number | null; array_spec?: string | null };

export interface ListJobsQuery {
  limit: number;
  /** Only jobs with seq below this (newest first). */
  beforeSeq?: number;
  statuses?: readonly JobStatus[];
  schedule?: string;
  /** Only jobs whose metadata has each of these keys (and values, where given). */
  labels?: readonly LabelFilter[];
  /** Only jobs submitted at or after this time (epoch ms). */
  since?: number;
}

export interface LabelFilter {
  key: string;
  value?: string;
}

/** Jobs counted by status; `capped`: only the newest LABEL_COUNT_LIMIT labelled jobs were counted. */
export interface StatusCounts {
  counts: Partial<Record<JobStatus, number>>;
  capped: boolean;
}

/** How many labelled jobs a filtered count reads at most (counting is never a scan of every job). */
export const LABEL_COUNT_LIMIT = 10_000;

/** Prepared statements for jobs, grouped in one place. */
export function jobsRepo(db: Db) {
  const insert = db.prepare(`
    INSERT INTO jobs (id, spec_hash, entrypoint, runtime_env, metadata, request, parallel, max_retries,
      retry_backoff_s, timeout_s, priority, wait_for_capacity, memory_limit, driver_on_head, schedule, status, created_at, held, after_jobs, max_concurrent, array_spec)
    VALUES (@id, @spec_hash, @entrypoint, @runtime_env, @metadata, @request, @parallel, @max_retries,
      @retry_backoff_s, @timeout_s, @priority, @wait_for_capacity, @memory_limit, @driver_on_head, @schedule, @status, @created_at, @held, @after_jobs, @max_concurrent, @array_spec)`);
  const byId = db.prepare('SELECT * FROM jobs WHERE id = ?');
  const setRunning = db.prepare(
    "UPDATE jobs SET status = 'RUNNING', start_time = ?, driver_node_id = ? WHERE id = ? AND status = 'PENDING'",
  );
  const finish = db.prepare(`
    UPDATE jobs SET status = @status, message = @message, error_type = @error_type, exit_code = @exit_code,
      end_time = @end_time
    WHERE id = @id AND status IN ('PENDING', 'RUNNING')`);
  const requestStop = db.prepare('UPDATE jobs SET stop_requested = 1 WHERE id = ?');
  const setFailedTask = db.prepare('UPDATE jobs SET failed_task = ?, message = ?, ray_message = ?, error_type = ?, exit_code = ? WHERE id = ? AND failed_task IS NULL');
  const remove = db.prepare('DELETE FROM jobs WHERE id = ?');
  const setHeld = db.prepare("UPDATE jobs SET held = ? WHERE id = ? AND status = 'PENDING'");
  const setInjobCounts = db.prepare('UPDATE jobs SET injob_counts = ? WHERE id = ?');
  const active = db.prepare("SELECT * FROM jobs WHERE status IN ('PENDING', 'RUNNING')");
  // Kept by triggers (migration 6): reading the counts never scans the jobs.
  const countsByStatus = db.prepare('SELECT status, n FROM job_status_counts WHERE n > 0');
  const maxSeq = db.prepare('SELECT COALESCE(MAX(seq), 0) AS seq FROM jobs');
  const labelCounts = (value: boolean) =>
    db.prepare(`
      SELECT j.status AS status, COUNT(*) AS n FROM
        (SELECT seq FROM job_labels WHERE key = ? ${value ? 'AND value = ?' : ''} ORDER BY seq DESC LIMIT ${LABEL_COUNT_LIMIT + 1}) AS l
        JOIN jobs AS j ON j.seq = l.seq
      GROUP BY j.status`);
  const labelCountsByKey = labelCounts(false);
  const labelCountsByValue = labelCounts(true);
  const lastEnd = db.prepare('SELECT MAX(end_time) AS t FROM jobs');

  return {
    insert: (job: NewJob) => insert.run({ held: 0, after_jobs: null, max_concurrent: null, array_spec: null, ...job }),
    get: (id: string) => byId.get(id) as JobRow | undefined,
    setRunning: (id: string, at: number, nodeId: string) => setRunning.run(at, nodeId, id).changes > 0,
    finish: (f: { id: string; status: JobStatus; message: string | null; error_type: JobErrorType | null; exit_code: number | null; end_time: number }) =>
      finish.run(f).changes > 0,
    requestStop: (id: string) => requestStop.run(id),
    setFailedTask: (id: string, idx: number, f: { message: string; rayMessage: string; errorType: JobErrorType; exitCode: number | null }) =>
      setFailedTask.run(idx, f.message, f.rayMessage, f.errorType, f.exitCode, id).changes > 0,
    remove: (id: string) => remove.run(id),
    /** Hold or release a pending job; false when it is not pending. */
    setHeld: (id: string, held: boolean) => setHeld.run(held ? 1 : 0, id).changes > 0,
    setInjobCounts: (id: string, counts: string) => setInjobCounts.run(counts, id),
    active: () => active.all() as JobRow[],
    countsByStatus: () => countsByStatus.all() as { status: JobStatus; n: number }[],
    lastEndTime: () => (lastEnd.get() as { t: number | null }).t,
    /** The newest job's seq (0 when there is none): with the counts, it changes whenever jobs do. */
    maxSeq: () => (maxSeq.get() as { seq: number }).seq,
    /** Counts by status of the jobs carrying a label, among the newest LABEL_COUNT_LIMIT of them. */
    labelCounts(label: LabelFilter): StatusCounts {
      const rows = (label.value === undefined ? labelCountsByKey.all(label.key) : labelCountsByValue.all(label.key, label.value)) as { status: JobStatus; n: number }[];
      const counts: StatusCounts['counts'] = {};
      let total = 0;
      for (const r of rows) {
        counts[r.status] = r.n;
        total += r.n;
      }
      return { counts, capped: total > LABEL_COUNT_LIMIT };
    },
  };
}

export type JobsRepo = ReturnType<typeof jobsRepo>;
