/**
 * A page of the job list in one statement: the jobs (newest first, filtered) with what each
 * job's view needs besides its row — its tasks counted by state, its attempts' usage summed, its
 * driver node's name — so a page of 100 jobs is one query, not one plus three per job.
 */
import type BetterSqlite3 from 'better-sqlite3';
import type { TaskState } from '../../shared/protocol/index.js';
import type { JobRow, LabelFilter, ListJobsQuery } from './jobsRepo.js';
import type { Db } from './open.js';
import { usageSumsSql, type UsageSums } from './tasksRepo.js';

/** A listed job: its row, and the parts of its view read in the same statement. */
export interface ListedJob {
  row: JobRow;
  /** Its tasks by state, states in SQL's order (as a job's own view counts them). */
  counts: Record<string, number>;
  usage: UsageSums;
  /** The name its driver node registered with (null: no driver node, or none known by its id). */
  driverName: string | null;
}

/** The columns the page adds to a job's row (named so that no column of `jobs` can clash). */
interface PageColumns {
  page_task_counts: string | null;
  page_attempts: number | null;
  page_cpu: number | null;
  page_cpu_n: number | null;
  page_peak: number | null;
  page_peak_n: number | null;
  page_run_s: number | null;
  page_driver_name: string | null;
}

/** Statements kept per shape of filter; shapes beyond this many are prepared for one use. */
const MAX_CACHED_SHAPES = 32;

function labelParams(l: LabelFilter): string[] {
  return l.value === undefined ? [l.key] : [l.key, l.value];
}

/** The page's SQL for a query's shape, and its parameters. */
export function jobPageSql(q: ListJobsQuery): { sql: string; params: unknown[] } {
  const where: string[] = [];
  const params: unknown[] = [];
  const [first, ...more] = q.labels ?? [];
  const seq = first ? 'l.seq' : 'j.seq';
  let from = 'jobs AS j';
  if (first) {
    // Walk the first label's index newest first, so a page reads about as many rows as it shows.
    from = 'job_labels AS l JOIN jobs AS j ON j.seq = l.seq';
    where.push(first.value === undefined ? 'l.key = ?' : 'l.key = ? AND l.value = ?');
    params.push(...labelParams(first));
  }
  for (const label of more) {
    where.push(`EXISTS (SELECT 1 FROM job_labels AS m WHERE m.seq = j.seq AND m.key = ?${label.value === undefined ? '' : ' AND m.value = ?'})`);
    params.push(...labelParams(label));
  }
  if (q.beforeSeq !== undefined) {
    where.push(`${seq} < ?`);
    params.push(q.beforeSeq);
  }
  if (q.statuses?.length) {
    where.push(`j.status IN (${q.statuses.map(() => '?').join(',')})`);
    params.push(...q.statuses);
  }
  if (q.schedule !== undefined) {
    where.push('j.schedule = ?');
    params.push(q.schedule);
  }
  if (q.since !== undefined) {
    where.push('j.created_at >= ?');
    params.push(q.since);
  }
  params.push(q.limit);
  // The page is found first (materialised: the index walk stops at the limit); then each of its
  // jobs' attempts are joined and its tasks counted through their primary keys, which start with
  // the job's id. Grouped by the page's jobs, in the page's order.
  const sql = `
    WITH page AS MATERIALIZED (SELECT j.* FROM ${from} ${where.length ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY ${seq} DESC LIMIT ?)
    SELECT page.*,
      (SELECT group_concat(state || '=' || n) FROM (SELECT state, COUNT(*) AS n FROM tasks WHERE job_id = page.id GROUP BY state)) AS page_task_counts,
      ${usageSumsSql('a.', 'page_')},
      n.name AS page_driver_name
    FROM page
    LEFT JOIN attempts AS a ON a.job_id = page.id AND a.started_at IS NOT NULL AND a.ended_at IS NOT NULL
    LEFT JOIN nodes AS n ON n.id = page.driver_node_id
    GROUP BY page.seq
    ORDER BY page.seq DESC`;
  return { sql, params };
}

function countsOf(text: string | null): Record<string, number> {
  const counts: Record<string, number> = {};
  if (!text) return counts;
  const pairs = text.split(',').map((p) => p.split('=') as [TaskState, string]);
  // SQL orders a job's own counts by state (GROUP BY); the page says the same, whatever order
  // group_concat happened to join them in.
  pairs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  for (const [state, n] of pairs) counts[state] = Number(n);
  return counts;
}

/** Where each column the page reads sits in a raw row of the page's statement. */
type ColumnAt = Record<keyof JobRow | keyof PageColumns, number>;

/** A page statement that answers rows as arrays, and where its columns are. */
interface PageStatement {
  st: BetterSqlite3.Statement;
  at: ColumnAt;
}

/**
 * The position of every column the page reads. Read by name once per statement: a page's rows
 * come back as arrays (better-sqlite3 builds a 40-key object per row several times slower than
 * the array), and each row is built below as one object literal of a fixed shape.
 */
function columnsOf(st: BetterSqlite3.Statement): ColumnAt {
  const at: Record<string, number> = {};
  st.columns().forEach((c, i) => {
    at[c.name] ??= i;
  });
  const need: (keyof ColumnAt)[] = [...JOB_COLUMNS, ...PAGE_COLUMNS];
  const missing = need.filter((c) => at[c] === undefined);
  if (missing.length) throw new Error(`the job page's statement lacks ${missing.join(', ')}`);
  return at as ColumnAt;
}

const PAGE_COLUMNS: (keyof PageColumns)[] = ['page_task_counts', 'page_attempts', 'page_cpu', 'page_cpu_n', 'page_peak', 'page_peak_n', 'page_run_s', 'page_driver_name'];

/** Every column of a job's row (a job's view reads them by name). */
const JOB_COLUMNS: (keyof JobRow)[] = [
  'seq', 'id', 'spec_hash', 'entrypoint', 'runtime_env', 'metadata', 'request', 'parallel', 'max_retries', 'retry_backoff_s', 'timeout_s', 'priority',
  'wait_for_capacity', 'memory_limit', 'driver_on_head', 'schedule', 'status', 'stop_requested', 'failed_task', 'message', 'error_type', 'exit_code',
  'created_at', 'start_time', 'end_time', 'driver_node_id', 'injob_counts', 'ray_message', 'held', 'after_jobs', 'max_concurrent', 'array_spec',
];

function listedOf(r: unknown[], at: ColumnAt): ListedJob {
  const row: JobRow = {
    seq: r[at.seq] as number,
    id: r[at.id] as string,
    spec_hash: r[at.spec_hash] as string,
    entrypoint: r[at.entrypoint] as string,
    runtime_env: r[at.runtime_env] as string,
    metadata: r[at.metadata] as string,
    request: r[at.request] as string,
    parallel: r[at.parallel] as number,
    max_retries: r[at.max_retries] as number,
    retry_backoff_s: r[at.retry_backoff_s] as number,
    timeout_s: r[at.timeout_s] as number | null,
    priority: r[at.priority] as number,
    wait_for_capacity: r[at.wait_for_capacity] as number,
    memory_limit: r[at.memory_limit] as number,
    driver_on_head: r[at.driver_on_head] as number,
    schedule: r[at.schedule] as string | null,
    status: r[at.status] as JobRow['status'],
    stop_requested: r[at.stop_requested] as number,
    failed_task: r[at.failed_task] as number | null,
    message: r[at.message] as string | null,
    error_type: r[at.error_type] as JobRow['error_type'],
    exit_code: r[at.exit_code] as number | null,
    created_at: r[at.created_at] as number,
    start_time: r[at.start_time] as number | null,
    end_time: r[at.end_time] as number | null,
    driver_node_id: r[at.driver_node_id] as string | null,
    injob_counts: r[at.injob_counts] as string | null,
    ray_message: r[at.ray_message] as string | null,
    held: r[at.held] as number,
    after_jobs: r[at.after_jobs] as string | null,
    max_concurrent: r[at.max_concurrent] as number | null,
    array_spec: r[at.array_spec] as string | null,
  };
  const n = (k: keyof PageColumns) => r[at[k]] as number | null;
  return {
    row,
    counts: countsOf(r[at.page_task_counts] as string | null),
    usage: { attempts: n('page_attempts') ?? 0, cpu: n('page_cpu'), cpu_n: n('page_cpu_n') ?? 0, peak: n('page_peak'), peak_n: n('page_peak_n') ?? 0, run_s: n('page_run_s') ?? 0 },
    driverName: r[at.page_driver_name] as string | null,
  };
}

export function jobPageRepo(db: Db) {
  const cache = new Map<string, PageStatement>();
  const statement = (sql: string): PageStatement => {
    let ps = cache.get(sql);
    if (!ps) {
      const st = db.prepare(sql).raw(true);
      ps = { st, at: columnsOf(st) };
      if (cache.size < MAX_CACHED_SHAPES) cache.set(sql, ps);
    }
    return ps;
  };
  return {
    /** Jobs matching `q`, newest first, at most `q.limit`, each with its view's parts. */
    page(q: ListJobsQuery): ListedJob[] {
      const { sql, params } = jobPageSql(q);
      const { st, at } = statement(sql);
      return (st.all(...params) as unknown[][]).map((r) => listedOf(r, at));
    },
  };
}

export type JobPageRepo = ReturnType<typeof jobPageRepo>;
