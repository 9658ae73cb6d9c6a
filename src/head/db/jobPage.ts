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

export function jobPageRepo(db: Db) {
  const cache = new Map<string, BetterSqlite3.Statement>();
  const statement = (sql: string): BetterSqlite3.Statement => {
    let st = cache.get(sql);
    if (!st) {
      st = db.prepare(sql);
      if (cache.size < MAX_CACHED_SHAPES) cache.set(sql, st);
    }
    return st;
  };
  return {
    /** Jobs matching `q`, newest first, at most `q.limit`, each with its view's parts. */
    page(q: ListJobsQuery): ListedJob[] {
      const { sql, params } = jobPageSql(q);
      const rows = statement(sql).all(...params) as (JobRow & PageColumns)[];
      // The row keeps the page's columns beside its own (a job's view reads its columns by name).
      return rows.map((r) => ({
        row: r,
        counts: countsOf(r.page_task_counts),
        usage: { attempts: r.page_attempts ?? 0, cpu: r.page_cpu, cpu_n: r.page_cpu_n ?? 0, peak: r.page_peak, peak_n: r.page_peak_n ?? 0, run_s: r.page_run_s ?? 0 },
        driverName: r.page_driver_name,
      }));
    },
  };
}

export type JobPageRepo = ReturnType<typeof jobPageRepo>;
