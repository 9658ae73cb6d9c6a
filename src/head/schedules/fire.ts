/**
 * Firing a schedule: apply its concurrency policy, submit its job with a deterministic
 * submission id, and record the run. Callers wrap a fire in one transaction together with the
 * schedule's next due time, so after a crash a fire either happened completely or not at all,
 * and firing the same due time again finds the same job instead of creating a second one.
 */
import { toRaysubError } from '../../shared/errors.js';
import type { ScheduleJob, ScheduleRun } from '../../shared/protocol/index.js';
import type { JobService } from '../jobService.js';
import type { ScheduleRow, SchedulesRepo } from './store.js';

export interface FireRequest {
  row: ScheduleRow;
  scheduledAt: number;
  trigger: ScheduleRun['trigger'];
  now: number;
  /** Only for manual runs: the caller's idempotency key. */
  submissionId?: string;
}

/** `nightly-1767225600`: the schedule's name and the due time in epoch seconds. */
export function runJobId(name: string, trigger: ScheduleRun['trigger'], scheduledAt: number): string {
  return trigger === 'manual' ? `${name}-manual-${scheduledAt}` : `${name}-${Math.floor(scheduledAt / 1000)}`;
}

/** Metadata every fired job carries, so a job can always be traced back to its schedule. */
export function runMetadata(name: string, scheduledAt: number): Record<string, string> {
  return { raysub_schedule: name, raysub_scheduled_at: new Date(scheduledAt).toISOString() };
}

/**
 * Runs of one schedule active (PENDING or RUNNING) at once at most, whatever its policy: past
 * them a due time is skipped. Without a bound, an `allow` schedule firing every second whose jobs
 * cannot start (held, waiting for capacity) would queue 86,400 jobs a day, forever.
 */
export const MAX_ACTIVE_RUNS = 100;

export function fireRun(repo: SchedulesRepo, jobs: JobService, req: FireRequest): number {
  const { row, scheduledAt, trigger, now } = req;
  const name = row.name;
  const base = { schedule: name, scheduled_at: scheduledAt, fired_at: now, trigger_kind: trigger };
  const active = repo.activeJobs(name);
  if (row.concurrency === 'forbid' && active.length > 0) {
    const ids = active.map((j) => j.id).join(', ');
    return repo.insertRun({ ...base, action: 'skipped', job_id: null, replaced: '[]', detail: `concurrency policy forbid: ${ids} still running` });
  }
  if (row.concurrency === 'allow' && active.length >= MAX_ACTIVE_RUNS) {
    return repo.insertRun({ ...base, action: 'skipped', job_id: null, replaced: '[]', detail: `${active.length} runs still active: a schedule runs at most ${MAX_ACTIVE_RUNS} at once` });
  }
  const replaced: string[] = [];
  if (row.concurrency === 'replace') {
    // A job already being stopped was replaced by an earlier run; stopping it again adds nothing.
    for (const j of active) if (!j.stopping && jobs.stop(j.id)) replaced.push(j.id);
  }
  const id = req.submissionId ?? runJobId(name, trigger, scheduledAt);
  const template = JSON.parse(row.job) as ScheduleJob;
  const body = { ...template, submission_id: id, metadata: { ...template.metadata, ...runMetadata(name, scheduledAt) } };
  try {
    jobs.submit(body, { schedule: name });
  } catch (err) {
    // One failing schedule (a deleted package, a conflicting id) never stops the ticker: record it.
    const e = toRaysubError(err);
    return repo.insertRun({ ...base, action: 'failed', job_id: null, replaced: JSON.stringify(replaced), detail: `${e.code}: ${e.message}` });
  }
  return repo.insertRun({
    ...base,
    action: 'started',
    job_id: id,
    replaced: JSON.stringify(replaced),
    detail: replaced.length ? `concurrency policy replace: stopped ${replaced.join(', ')}` : null,
  });
}
