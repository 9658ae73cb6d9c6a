import type { Db } from './open.js';

const FINISHED = "status IN ('SUCCEEDED', 'FAILED', 'STOPPED')";

/** Queries that pick the finished jobs retention deletes, oldest first, a batch at a time. */
export function retentionRepo(db: Db) {
  const endedBefore = db.prepare(`SELECT id FROM jobs WHERE end_time IS NOT NULL AND end_time < ? AND ${FINISHED} ORDER BY end_time LIMIT ?`);
  const beyondNewest = db.prepare(`SELECT id FROM jobs WHERE end_time IS NOT NULL AND ${FINISHED} ORDER BY end_time DESC, seq DESC LIMIT ? OFFSET ?`);
  const scheduleBeyond = (statuses: string) =>
    db.prepare(`SELECT id FROM jobs WHERE schedule = ? AND status IN (${statuses}) ORDER BY seq DESC LIMIT ? OFFSET ?`);
  const succeededBeyond = scheduleBeyond("'SUCCEEDED'");
  const failedBeyond = scheduleBeyond("'FAILED', 'STOPPED'");
  const ids = (rows: unknown[]): string[] => (rows as { id: string }[]).map((r) => r.id);
  return {
    /** Finished jobs that ended before `at`. */
    endedBefore: (at: number, limit: number) => ids(endedBefore.all(at, limit)),
    /** Finished jobs after the newest `keep` (by end time). */
    beyondNewest: (keep: number, limit: number) => ids(beyondNewest.all(limit, keep)),
    /** A schedule's succeeded jobs after its newest `keep` (by submission). */
    scheduleSucceededBeyond: (schedule: string, keep: number, limit: number) => ids(succeededBeyond.all(schedule, limit, keep)),
    /** A schedule's failed or stopped jobs after its newest `keep`. */
    scheduleFailedBeyond: (schedule: string, keep: number, limit: number) => ids(failedBeyond.all(schedule, limit, keep)),
  };
}

export type RetentionRepo = ReturnType<typeof retentionRepo>;
