import { z } from 'zod';
import { compileCron, CronError } from '../cron.js';
import { jobStatusSchema } from './common.js';
import { jobSubmitRequestSchema } from './jobs.js';

/**
 * Schedule names become part of the submission ids of the jobs they fire
 * (`<name>-<epoch-seconds>`), so they use the submission id alphabet with room to spare.
 */
export const scheduleNameSchema = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/, 'must be 1-64 characters of letters, digits, "_", "." or "-"');

/** As Kubernetes CronJob: allow overlapping runs, forbid (skip a run while one is active), replace. */
export const concurrencyPolicySchema = z.enum(['allow', 'forbid', 'replace']);
export type ConcurrencyPolicy = z.infer<typeof concurrencyPolicySchema>;

/** The job a schedule fires: a job submission without an id (each run gets its own). */
/** Kubernetes CronJob's defaults: the last 3 succeeded jobs and the last failed one are kept. */
export const DEFAULT_SUCCESSFUL_JOBS_HISTORY_LIMIT = 3;
export const DEFAULT_FAILED_JOBS_HISTORY_LIMIT = 1;

export const scheduleJobSchema = jobSubmitRequestSchema.omit({ submission_id: true, job_id: true });
export type ScheduleJob = z.infer<typeof scheduleJobSchema>;

export const scheduleCreateRequestSchema = z
  .strictObject({
    name: scheduleNameSchema,
    cron: z.string().trim().min(1).max(200),
    /** IANA zone the expression is read in; default UTC. */
    timezone: z.string().min(1).max(100).optional(),
    concurrency: concurrencyPolicySchema.optional(),
    /** A run more than this late (e.g. the head was down) is not started; default: no limit. */
    starting_deadline_s: z.number().min(1).max(365 * 24 * 3600).nullable().optional(),
    /** Create it paused. */
    suspend: z.boolean().optional(),
    /** Finished jobs of the schedule kept, by outcome (as CronJob's); older ones are deleted with their logs. */
    successful_jobs_history_limit: z.number().int().min(0).max(10_000).optional(),
    failed_jobs_history_limit: z.number().int().min(0).max(10_000).optional(),
    job: scheduleJobSchema,
  })
  .superRefine((req, ctx) => {
    try {
      compileCron(req.cron, req.timezone ?? 'UTC');
    } catch (err) {
      if (!(err instanceof CronError)) throw err;
      ctx.addIssue({ code: 'custom', path: [/time zone/.test(err.message) ? 'timezone' : 'cron'], message: err.message });
    }
  });
export type ScheduleCreateRequest = z.infer<typeof scheduleCreateRequestSchema>;

export const scheduleTriggerRequestSchema = z.strictObject({
  /** Idempotency key for the fired job; the same id returns the same run. */
  submission_id: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/).optional(),
});

/** How a run came about: the cron ticker on time, a catch-up after downtime, or `schedule trigger`. */
export const runTriggerSchema = z.enum(['cron', 'catch-up', 'manual']);
/** What the head did: started a job, skipped it (forbid), missed it (too late), or failed to submit. */
export const runActionSchema = z.enum(['started', 'skipped', 'missed', 'failed']);

export const scheduleRunSchema = z.object({
  seq: z.number(),
  schedule: z.string(),
  /** The due time (for manual runs: when it was triggered), epoch ms. */
  scheduled_at: z.number(),
  /** When the head acted on it, epoch ms. */
  fired_at: z.number(),
  trigger: runTriggerSchema,
  action: runActionSchema,
  job_id: z.string().nullable(),
  /** The fired job's status now (null if no job, or it was deleted). */
  job_status: jobStatusSchema.nullable(),
  job_exit_code: z.number().nullable(),
  /** Jobs stopped by the replace policy to make room for this run. */
  replaced: z.array(z.string()),
  detail: z.string().nullable(),
});
export type ScheduleRun = z.infer<typeof scheduleRunSchema>;

export const scheduleInfoSchema = z.object({
  name: z.string(),
  cron: z.string(),
  timezone: z.string(),
  concurrency: concurrencyPolicySchema,
  starting_deadline_s: z.number().nullable(),
  suspended: z.boolean(),
  created_at: z.number(),
  updated_at: z.number(),
  /** The next due time, epoch ms (null while suspended). */
  next_run_at: z.number().nullable(),
  /** The latest run that was started, skipped or failed. */
  last_run: scheduleRunSchema.nullable(),
  /** Its jobs that are PENDING or RUNNING now. */
  active_jobs: z.array(z.string()),
  /** How many of its succeeded, and of its failed or stopped, jobs are kept. */
  successful_jobs_history_limit: z.number(),
  failed_jobs_history_limit: z.number(),
  job: scheduleJobSchema,
});
export type ScheduleInfo = z.infer<typeof scheduleInfoSchema>;

export const scheduleListSchema = z.object({ schedules: z.array(scheduleInfoSchema) });
export const scheduleRunListSchema = z.object({ runs: z.array(scheduleRunSchema) });
