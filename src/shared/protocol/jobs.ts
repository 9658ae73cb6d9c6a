import { z } from 'zod';
import { injobCountsSchema } from './injob.js';
import { jobErrorTypeSchema, jobStatusSchema, rayErrorTypeSchema, resourceMapSchema, submissionIdSchema } from './common.js';

/** The metadata entry that holds a job's name (`raysub job submit --name`); listed by `?name=`. */
export const JOB_NAME_KEY = 'job_name';

/** How many jobs one job may run after (`after` and `after_any` each). */
export const MAX_DEPENDENCIES = 100;

/**
 * What one job's description may hold: every job's metadata and runtime_env come back in each
 * listing (Ray's JobDetails carry both), so one job holding megabytes would make every page of the
 * job list megabytes for everyone. Generous for what they are for (Kubernetes allows 256 KiB of
 * annotations; an environment variable's value cannot pass 128 KiB to exec anyway).
 */
export const MAX_METADATA_CHARS = 64 * 1024;
export const MAX_RUNTIME_ENV_CHARS = 256 * 1024;
export const MAX_LABEL_SELECTORS = 64;

const metadataSchema = z
  .record(z.string(), z.string())
  .refine((m) => Object.entries(m).reduce((n, [k, v]) => n + k.length + v.length, 0) <= MAX_METADATA_CHARS, `must hold at most ${MAX_METADATA_CHARS / 1024} KiB of keys and values`);

const runtimeEnvFieldSchema = z
  .record(z.string(), z.unknown())
  .refine((e) => JSON.stringify(e).length <= MAX_RUNTIME_ENV_CHARS, `must be at most ${MAX_RUNTIME_ENV_CHARS / 1024} KiB as JSON (env_vars, pip and excludes included); ship large settings as files in the working dir`);

/** raysub's own submission options, namespaced so they never collide with Ray's fields. */
export const jobOptionsSchema = z.strictObject({
  parallel: z.number().int().min(1).max(10_000).optional(),
  max_retries: z.number().int().min(0).max(100).optional(),
  retry_backoff_s: z.number().min(0).max(3600).optional(),
  timeout_s: z.number().positive().max(365 * 24 * 3600).optional(),
  priority: z.number().int().min(-1000).max(1000).optional(),
  wait_for_capacity: z.boolean().optional(),
  /** Submit it held: it stays PENDING until `POST /api/jobs/{id}/release`. */
  hold: z.boolean().optional(),
  /** Kill the task above its memory request (`entrypoint_memory`), instead of only placing by it. */
  memory_limit: z.boolean().optional(),
  /** Start only after these jobs SUCCEEDED; if one fails or is stopped, fail as DEPENDENCY_FAILED. */
  after: z.array(submissionIdSchema).min(1).max(MAX_DEPENDENCIES).optional(),
  /** Start only after these jobs ended, whatever their end. */
  after_any: z.array(submissionIdSchema).min(1).max(MAX_DEPENDENCIES).optional(),
  /** At most this many of its tasks at once. */
  max_concurrent: z.number().int().min(1).max(10_000).optional(),
  /** Array indices as Slurm writes them (`0-99:2`, `1,5,9`, `%K` for max_concurrent): one task per index. */
  array: z.string().min(1).max(1000).optional(),
});
export type JobOptions = z.infer<typeof jobOptionsSchema>;

/**
 * Ray's JobSubmitRequest plus raysub's `raysub` block. `runtime_env` is validated separately
 * (see runtimeEnv.ts) so that its errors carry their own code.
 */
export const jobSubmitRequestSchema = z.strictObject({
  entrypoint: z.string().trim().min(1, 'entrypoint must not be empty').max(65_536),
  submission_id: submissionIdSchema.optional(),
  job_id: submissionIdSchema.optional(),
  runtime_env: runtimeEnvFieldSchema.optional(),
  metadata: metadataSchema.optional(),
  entrypoint_num_cpus: z.number().min(0).max(100_000).optional(),
  entrypoint_num_gpus: z.number().min(0).max(1024).optional(),
  entrypoint_memory: z.number().int().min(0).optional(),
  entrypoint_resources: resourceMapSchema.optional(),
  entrypoint_label_selector: z
    .record(z.string().max(256), z.string().max(256))
    .refine((s) => Object.keys(s).length <= MAX_LABEL_SELECTORS, `must have at most ${MAX_LABEL_SELECTORS} entries`)
    .optional(),
  raysub: jobOptionsSchema.optional(),
});
export type JobSubmitRequest = z.infer<typeof jobSubmitRequestSchema>;

export const jobSubmitResponseSchema = z.object({ job_id: z.string(), submission_id: z.string() });

export const taskStateSchema = z.enum(['PENDING', 'ASSIGNED', 'RUNNING', 'SUCCEEDED', 'FAILED', 'STOPPED']);
export type TaskState = z.infer<typeof taskStateSchema>;

export const attemptInfoSchema = z.object({
  attempt: z.number(),
  /** CPU seconds and peak memory bytes its cgroups counted; null: not counted on its node (no cgroups), or not ended yet. */
  cpu_s: z.number().nullable().optional(),
  peak_memory: z.number().nullable().optional(),
  node_id: z.string().nullable(),
  node_name: z.string().nullable(),
  started_at: z.number().nullable(),
  ended_at: z.number().nullable(),
  outcome: z.string().nullable(),
  exit_code: z.number().nullable(),
  error_type: z.string().nullable(),
  message: z.string().nullable(),
});
export type AttemptInfo = z.infer<typeof attemptInfoSchema>;

export const taskInfoSchema = z.object({
  index: z.number(),
  /** Its index in the array (`--array`; RAYSUB_ARRAY_INDEX), else the task index. */
  array_index: z.number().optional(),
  state: taskStateSchema,
  attempt: z.number(),
  node_id: z.string().nullable(),
  node_name: z.string().nullable(),
  gpu_ids: z.array(z.number()),
  exit_code: z.number().nullable(),
  error_type: z.string().nullable(),
  message: z.string().nullable(),
  started_at: z.number().nullable(),
  ended_at: z.number().nullable(),
  attempts: z.array(attemptInfoSchema),
});
export type TaskInfo = z.infer<typeof taskInfoSchema>;

export const queueInfoSchema = z.object({ position: z.number(), reason: z.string() });
export type QueueInfo = z.infer<typeof queueInfoSchema>;

/** What raysub adds to a job's details: everything beyond Ray's JobDetails, under one key. */
export const raysubJobInfoSchema = z.object({
  created_at: z.number(),
  /** When its first task started running (Ray's `start_time` is the submission time). */
  started_at: z.number().nullable(),
  /** raysub's own code for how the job failed or was stopped (finer than Ray's `error_type`). */
  error_type: jobErrorTypeSchema.nullable(),
  /** raysub's own account of the job's state (Ray's words are in `message`). */
  message: z.string().nullable(),
  /** The node that ran (or runs) the job's first task, as raysub names it. */
  driver_node: z.object({ id: z.string(), name: z.string().nullable() }).nullable(),
  entrypoint_num_cpus: z.number(),
  entrypoint_num_gpus: z.number(),
  entrypoint_memory: z.number(),
  entrypoint_resources: z.record(z.string(), z.number()),
  parallel: z.number(),
  max_retries: z.number(),
  retry_backoff_s: z.number(),
  timeout_s: z.number().nullable(),
  priority: z.number(),
  wait_for_capacity: z.boolean(),
  memory_limit: z.boolean(),
  /** Placed on the head's own node: Ray's default for a job that asks for no resources. */
  driver_on_head: z.boolean(),
  schedule: z.string().nullable(),
  /** Held by the user: it waits until released (`raysub job release`). */
  held: z.boolean(),
  /** The jobs it runs after once they SUCCEEDED (`--after`), and once they ended (`--after-any`). */
  after: z.array(z.string()),
  after_any: z.array(z.string()),
  /** At most this many of its tasks run at once (null: no limit but resources). */
  max_concurrent: z.number().nullable(),
  /** The array spec it was submitted with (`--array`), or null. */
  array: z.string().nullable(),
  /**
   * What the job used, over the attempts that ran and ended: CPU-seconds, the highest peak memory
   * of any attempt, seconds its attempts ran added up, GPU-seconds held. A counter is null when an
   * attempt was not counted (a node without cgroups); all are null until an attempt ends.
   */
  usage: z.object({ cpu_s: z.number().nullable(), peak_memory: z.number().nullable(), run_s: z.number().nullable(), gpu_s: z.number().nullable() }).optional(),
  task_counts: z.record(z.string(), z.number()),
  queue: queueInfoSchema.nullable(),
  /** Tasks and actors the job submitted through the in-job API, by state (null: none). */
  injob: injobCountsSchema.nullable().optional(),
  tasks: z.array(taskInfoSchema).optional(),
});
export type RaysubJobInfo = z.infer<typeof raysubJobInfoSchema>;

/** `GET /api/usage`: usage over a period, by the value of a label (raysub job usage). */
export const usageSummarySchema = z.object({
  from: z.number(),
  to: z.number(),
  by: z.string().nullable(),
  groups: z.array(
    z.object({
      group: z.string().nullable(),
      jobs: z.number(),
      attempts: z.number(),
      uncounted: z.number(),
      cpu_s: z.number(),
      peak_memory: z.number().nullable(),
      run_s: z.number(),
      gpu_s: z.number(),
    }),
  ),
});
export type UsageSummary = z.infer<typeof usageSummarySchema>;

/** Ray's JobDetails, key for key (Ray 2.58), with raysub's additions under `raysub`. */
export const jobDetailsSchema = z.object({
  type: z.literal('SUBMISSION'),
  job_id: z.string().nullable(),
  submission_id: z.string(),
  driver_info: z.null(),
  status: jobStatusSchema,
  entrypoint: z.string(),
  message: z.string().nullable(),
  error_type: rayErrorTypeSchema.nullable(),
  /** When the job was submitted (as Ray sets it), epoch ms. */
  start_time: z.number().nullable(),
  end_time: z.number().nullable(),
  /** As submitted (null when none was). */
  metadata: z.record(z.string(), z.string()).nullable(),
  runtime_env: z.record(z.string(), z.unknown()).nullable(),
  driver_agent_http_address: z.string().nullable(),
  driver_node_id: z.string().nullable(),
  driver_exit_code: z.number().nullable(),
  raysub: raysubJobInfoSchema,
});
export type JobDetails = z.infer<typeof jobDetailsSchema>;

export const jobListSchema = z.array(jobDetailsSchema);

/**
 * One line of the NDJSON log stream (`GET /api/jobs/:id/logs/stream`): a piece of output (with
 * the byte offset in the task's log just after it, to resume from), a keep-alive with the job's
 * state while it is quiet or queued, the end, or an error that ended the stream.
 */
export const logStreamLineSchema = z.union([
  z.object({
    task: z.number(),
    stream: z.enum(['stdout', 'stderr', 'system']),
    data: z.string(),
    offset: z.number().optional(),
    /** With `timestamps`: when the piece's first byte was captured (ms since the epoch). */
    time: z.number().optional(),
  }),
  /** With `tail` or `since`: where each task's read starts (the first line, before any output). */
  z.object({ from: z.record(z.string(), z.number()) }),
  z.object({ keepalive: z.literal(true), status: jobStatusSchema, queue: queueInfoSchema.nullable(), keepalive_ms: z.number() }),
  z.object({ end: z.literal(true), status: jobStatusSchema }),
  z.object({ error: z.object({ code: z.string(), message: z.string() }) }),
]);
export type LogStreamLine = z.infer<typeof logStreamLineSchema>;

/** Where to resume a log stream: the byte offset to start from in each task's log (default 0). */
export const logStreamRequestSchema = z.object({
  follow: z.boolean().default(false),
  from: z.record(z.string().regex(/^\d{1,5}$/), z.number().int().min(0)).default({}),
  /** Only this task's log (an array job's task index). */
  task: z.number().int().min(0).max(100_000).optional(),
  /** Start each task not in `from` at its last N lines. */
  tail: z.number().int().min(0).max(1_000_000_000).optional(),
  /** Start each task not in `from` at what was captured at or after this time (ms since the epoch). */
  since: z.number().int().min(0).optional(),
  /** Pieces carry their capture time (`time`), cut where it changes. */
  timestamps: z.boolean().default(false),
});
export type LogStreamRequest = z.infer<typeof logStreamRequestSchema>;

/** Ray's version answer, with raysub's own version under `raysub`. */
export const versionResponseSchema = z.object({
  version: z.string(),
  ray_version: z.string(),
  ray_commit: z.string(),
  session_name: z.string(),
  raysub: z.object({ version: z.string() }).optional(),
});
