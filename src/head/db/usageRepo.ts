import type { Db } from './open.js';

/** What the jobs of one group (a label's value) used over a period, as `raysub job usage` shows it. */
export interface UsageGroup {
  /** The label's value (null: jobs without that label, or every job when not grouped). */
  group: string | null;
  jobs: number;
  /** Attempts that ran and ended; `uncounted`: of those, how many no cgroup counted. */
  attempts: number;
  uncounted: number;
  cpu_s: number;
  peak_memory: number | null;
  run_s: number;
  gpu_s: number;
}

/** At most this many groups are answered (the largest by CPU-seconds). */
export const MAX_USAGE_GROUPS = 1000;

/**
 * Usage summed over the attempts of the jobs submitted in [from, to), grouped by the value of the
 * label `by` (Slurm's sacct, as one query on the attempts table: jobs by submission time are
 * indexed).
 */
export function usageRepo(db: Db) {
  const query = (grouped: boolean) =>
    db.prepare(`
      SELECT ${grouped ? 'l.value' : 'NULL'} AS grp, COUNT(DISTINCT j.id) AS jobs, COUNT(a.attempt) AS attempts,
        COUNT(a.attempt) - COUNT(a.cpu_s) AS uncounted, COALESCE(SUM(a.cpu_s), 0) AS cpu_s, MAX(a.peak_memory) AS peak_memory,
        COALESCE(SUM(a.ended_at - a.started_at), 0) / 1000.0 AS run_s,
        COALESCE(SUM((a.ended_at - a.started_at) * json_extract(j.request, '$.gpus')), 0) / 1000.0 AS gpu_s
      FROM jobs AS j
      ${grouped ? 'LEFT JOIN job_labels AS l ON l.seq = j.seq AND l.key = @by' : ''}
      LEFT JOIN attempts AS a ON a.job_id = j.id AND a.started_at IS NOT NULL AND a.ended_at IS NOT NULL
      WHERE j.created_at >= @from AND j.created_at < @to
      GROUP BY grp ORDER BY cpu_s DESC LIMIT ${MAX_USAGE_GROUPS}`);
  const all = query(false);
  const byLabel = query(true);
  return {
    summary(q: { from: number; to: number; by?: string }): UsageGroup[] {
      const rows = (q.by === undefined ? all.all({ from: q.from, to: q.to }) : byLabel.all({ from: q.from, to: q.to, by: q.by })) as (Omit<UsageGroup, 'group'> & { grp: string | null })[];
      return rows.map(({ grp, ...r }) => ({ group: grp, ...r }));
    },
  };
}
