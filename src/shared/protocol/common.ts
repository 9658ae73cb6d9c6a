import { z } from 'zod';
import { RaysubError, type ErrorCode } from '../errors.js';

/** Submission ids end up in file names on the head, so they are restricted to a safe alphabet. */
export const submissionIdSchema = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/, 'must be 1-128 characters of letters, digits, "_", "." or "-"');

export const jobStatusSchema = z.enum(['PENDING', 'RUNNING', 'SUCCEEDED', 'FAILED', 'STOPPED']);
export type JobStatus = z.infer<typeof jobStatusSchema>;
export const terminalStatuses: readonly JobStatus[] = ['SUCCEEDED', 'FAILED', 'STOPPED'];
export function isTerminal(status: JobStatus): boolean {
  return terminalStatuses.includes(status);
}

/** Stable failure codes carried in `error_type`. */
export const jobErrorTypeSchema = z.enum([
  'ENTRYPOINT_FAILED',
  'RUNTIME_ENV_SETUP_FAILED',
  'UNSCHEDULABLE',
  'TIMEOUT',
  'OOM_KILLED',
  /** Its agent killed it: the node's disk fell below its floor and it held the most of it. */
  'DISK_PRESSURE',
  'NODE_LOST',
  /** Its node could not prepare it (its work dir is not writable: read-only, full, I/O errors); nothing of it ran. */
  'NODE_UNHEALTHY',
  'STOPPED_BY_USER',
  'SANDBOX_UNAVAILABLE',
  /** Its in-job traffic went over a limit (docs/tasks.md, "Limits"). */
  'INJOB_LIMIT_EXCEEDED',
  /** A job it runs after (`--after`) failed or was stopped: it never ran. */
  'DEPENDENCY_FAILED',
  'INTERNAL',
]);
export type JobErrorType = z.infer<typeof jobErrorTypeSchema>;

/** Ray's `JobErrorType` values: what Ray's clients read in `error_type` (raysub's own code is in `raysub.error_type`). */
export const rayErrorTypeSchema = z.enum([
  'RUNTIME_ENV_SETUP_FAILURE',
  'JOB_SUPERVISOR_ACTOR_START_TIMEOUT',
  'JOB_SUPERVISOR_ACTOR_START_FAILURE',
  'JOB_SUPERVISOR_ACTOR_UNSCHEDULABLE',
  'JOB_SUPERVISOR_ACTOR_UNKNOWN_FAILURE',
  'JOB_SUPERVISOR_ACTOR_DIED',
  'JOB_ENTRYPOINT_COMMAND_START_ERROR',
  'JOB_ENTRYPOINT_COMMAND_ERROR',
]);
export type RayErrorType = z.infer<typeof rayErrorTypeSchema>;

export const resourceMapSchema = z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_.:-]{0,63}$/), z.number().min(0));

/** Render a zod error as one line naming the field. */
export function describeZodError(error: z.ZodError): string {
  return error.issues
    .slice(0, 3)
    .map((issue) => {
      const path = issue.path.length ? issue.path.join('.') : 'body';
      return `${path}: ${issue.message}`;
    })
    .join('; ');
}

/** Parse a value that crossed a process boundary; a failure becomes a RaysubError with `code`. */
export function parseWith<T extends z.ZodType>(schema: T, value: unknown, code: ErrorCode = 'INVALID_REQUEST'): z.infer<T> {
  const result = schema.safeParse(value);
  if (!result.success) throw new RaysubError(code, describeZodError(result.error));
  return result.data;
}
