/**
 * Retention: finished jobs and their logs are deleted once they are older than the TTL, once more
 * finished jobs than the limit are kept (the oldest first), and once a schedule has more of them
 * than its history limits keep (as Kubernetes CronJob's successful/failedJobsHistoryLimit).
 * Deleting goes through JobService.delete, the one delete path, so a deleted job's packages
 * become unreferenced like those of a job deleted by hand.
 */
import type { RetentionOptions } from '../shared/config.js';
import type { Logger } from '../shared/log.js';
import { retentionRepo, type RetentionRepo } from './db/retentionRepo.js';
import type { Store } from './db/index.js';

/** How many finished jobs a schedule keeps, by outcome. */
export interface ScheduleHistoryLimits {
  name: string;
  successful: number;
  failed: number;
}

export type RetentionReason = 'ttl' | 'count' | 'schedule';

export interface RetentionPick {
  id: string;
  why: RetentionReason;
}

/** Jobs deleted per pass; a pass that fills it is followed by another at once. */
const BATCH = 200;

/**
 * Which finished jobs to delete now, oldest first, at most `limit`: a pure decision over the
 * store, so it is tested in process on a real SQLite file.
 */
export function pickExpired(repo: RetentionRepo, opts: Pick<RetentionOptions, 'jobTtlMs' | 'maxFinishedJobs'>, schedules: readonly ScheduleHistoryLimits[], now: number, limit: number): RetentionPick[] {
  const picks = new Map<string, RetentionReason>();
  const add = (ids: string[], why: RetentionReason): void => {
    for (const id of ids) if (picks.size < limit && !picks.has(id)) picks.set(id, why);
  };
  if (opts.jobTtlMs > 0) add(repo.endedBefore(now - opts.jobTtlMs, limit), 'ttl');
  if (opts.maxFinishedJobs > 0 && picks.size < limit) add(repo.beyondNewest(opts.maxFinishedJobs, limit), 'count');
  for (const s of schedules) {
    if (picks.size >= limit) break;
    add(repo.scheduleSucceededBeyond(s.name, s.successful, limit), 'schedule');
    add(repo.scheduleFailedBeyond(s.name, s.failed, limit), 'schedule');
  }
  return [...picks].map(([id, why]) => ({ id, why }));
}

type SweeperState = 'idle' | 'running' | 'closed';

export class RetentionSweeper {
  private state: SweeperState = 'idle';
  private timer: NodeJS.Timeout | null = null;
  private readonly repo: RetentionRepo;

  constructor(
    store: Store,
    private readonly deps: {
      /** The one delete path (JobService.delete): the job's row, then its logs. */
      deleteJob: (id: string) => void;
      /** Every schedule's history limits, read at each pass. */
      scheduleLimits: () => ScheduleHistoryLimits[];
      /** Log directories, and whether a job still exists (for logs a crash left behind). */
      logDirs: () => string[];
      jobExists: (id: string) => boolean;
      removeLogs: (id: string) => void;
    },
    private readonly opts: RetentionOptions,
    private readonly log: Logger,
  ) {
    this.repo = retentionRepo(store.db);
  }

  /** Start sweeping: logs without a job are removed now, expired jobs at once and then every `sweepMs`. Idempotent. */
  start(): void {
    if (this.state !== 'idle') return;
    this.state = 'running';
    this.removeOrphanLogs();
    this.arm(0);
  }

  /** Stop. Idempotent; a pass in progress is synchronous and never cut. */
  shutdown(): void {
    this.state = 'closed';
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private arm(delayMs: number): void {
    if (this.state !== 'running') return;
    this.timer = setTimeout(() => this.tick(), delayMs);
    this.timer.unref();
  }

  private tick(): void {
    this.timer = null;
    let full = false;
    try {
      full = this.sweep(Date.now()) >= BATCH;
    } catch (err) {
      this.log.error({ err }, 'retention pass failed; trying again at the next one');
    }
    // A full batch means more is due: go on soon, letting the head serve in between.
    this.arm(full ? 10 : this.opts.sweepMs);
  }

  /** One pass: delete what is due (at most one batch). Returns how many jobs were deleted. */
  sweep(now: number): number {
    const picks = pickExpired(this.repo, this.opts, this.deps.scheduleLimits(), now, BATCH);
    const counts: Record<RetentionReason, number> = { ttl: 0, count: 0, schedule: 0 };
    let deleted = 0;
    for (const p of picks) {
      try {
        this.deps.deleteJob(p.id);
        counts[p.why]++;
        deleted++;
      } catch (err) {
        // Deleted meanwhile (by hand), or its logs could not be removed: the next pass sees it again.
        this.log.warn({ err, jobId: p.id }, 'retention could not delete a finished job');
      }
    }
    if (deleted > 0) this.log.info({ deleted, ...counts }, 'retention deleted finished jobs and their logs');
    return deleted;
  }

  /** Logs of jobs that no longer exist (a crash between deleting a job and its logs). */
  private removeOrphanLogs(): void {
    try {
      let removed = 0;
      for (const id of this.deps.logDirs()) {
        if (this.deps.jobExists(id)) continue;
        try {
          this.deps.removeLogs(id);
          removed++;
        } catch (err) {
          this.log.warn({ err, jobId: id }, 'could not remove logs without a job');
        }
      }
      if (removed > 0) this.log.info({ removed }, 'removed logs of jobs that no longer exist');
    } catch (err) {
      this.log.error({ err }, 'could not look for logs without a job');
    }
  }
}
