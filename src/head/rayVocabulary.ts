/**
 * Ray's words for a job's outcome: the `error_type` and `message` Ray's job server would give,
 * derived from raysub's finer codes (which stay in the answer's `raysub` block). Pure functions,
 * so the whole table is tested in process. The phrases are Ray 2.58's (job_supervisor.py,
 * job_manager.py, common.py); scripts written for Ray match on them.
 */
import type { JobErrorType, JobStatus, RayErrorType } from '../shared/protocol/index.js';
import type { TaskRequest } from '../shared/resources.js';

/** Ray's `JobErrorType` for one of raysub's, given the driver's exit code (null: it never ran or has none). */
export function rayErrorType(type: JobErrorType | null, exitCode: number | null): RayErrorType | null {
  switch (type) {
    case null:
    case 'STOPPED_BY_USER':
      return null;
    case 'ENTRYPOINT_FAILED':
      return exitCode === null ? 'JOB_ENTRYPOINT_COMMAND_START_ERROR' : 'JOB_ENTRYPOINT_COMMAND_ERROR';
    case 'OOM_KILLED':
      // Ray sees a driver the kernel killed as an entrypoint that failed with -9.
      return 'JOB_ENTRYPOINT_COMMAND_ERROR';
    case 'RUNTIME_ENV_SETUP_FAILED':
      return 'RUNTIME_ENV_SETUP_FAILURE';
    case 'UNSCHEDULABLE':
      return 'JOB_SUPERVISOR_ACTOR_UNSCHEDULABLE';
    case 'NODE_LOST':
      return 'JOB_SUPERVISOR_ACTOR_DIED';
    case 'SANDBOX_UNAVAILABLE':
    case 'NODE_UNHEALTHY':
      return 'JOB_SUPERVISOR_ACTOR_START_FAILURE';
    case 'TIMEOUT':
    case 'DISK_PRESSURE':
    case 'INJOB_LIMIT_EXCEEDED':
    case 'DEPENDENCY_FAILED':
    case 'INTERNAL':
    default:
      return 'JOB_SUPERVISOR_ACTOR_UNKNOWN_FAILURE';
  }
}

/** The last `lines` lines of `text`, at most `maxChars` characters of them (Ray's tail of a failed driver's log). */
export function lastLines(text: string, lines = 10, maxChars = 20_000): string {
  const all = text.split('\n');
  if (all[all.length - 1] === '') all.pop();
  const tail = all.slice(-lines).join('\n');
  return tail.length > maxChars ? tail.slice(tail.length - maxChars) : tail;
}

/**
 * The message Ray gives a job that failed: `detail` is raysub's own account (what happened, without
 * the log), `logTail` the end of the driver's log for an entrypoint that failed.
 */
export function rayFailureMessage(f: { submissionId: string; errorType: JobErrorType; exitCode: number | null; detail: string; logTail: string }): string {
  const ray = rayErrorType(f.errorType, f.exitCode);
  switch (ray) {
    case 'JOB_ENTRYPOINT_COMMAND_ERROR':
      return f.logTail
        ? `Job entrypoint command failed with exit code ${f.exitCode}, last available logs (truncated to 20,000 chars):\n${f.logTail}`
        : `Job entrypoint command failed with exit code ${f.exitCode}. No logs available.`;
    case 'JOB_ENTRYPOINT_COMMAND_START_ERROR':
      return `Job entrypoint command could not be started: ${f.detail}`;
    case 'RUNTIME_ENV_SETUP_FAILURE':
      return `runtime_env setup failed: ${f.detail}`;
    case 'JOB_SUPERVISOR_ACTOR_UNSCHEDULABLE':
      return `Job supervisor actor could not be scheduled: ${f.detail}`;
    case 'JOB_SUPERVISOR_ACTOR_DIED':
      return `Job supervisor actor died: ${f.detail}`;
    case 'JOB_SUPERVISOR_ACTOR_START_FAILURE':
      return `Failed to start supervisor actor ${f.submissionId}: '${f.detail}'`;
    default:
      return `Unexpected error occurred: ${f.detail}`;
  }
}

/**
 * The first line of a Ray job's driver log (job_supervisor.py), once the job has started (`ran`:
 * it has output, which can reach the head before its start does).
 */
export function rayHeader(row: { id: string; entrypoint: string; start_time: number | null }, ran = false): string {
  return row.start_time === null && !ran ? '' : `Running entrypoint for job ${row.id}: ${row.entrypoint}\n`;
}

/** Whether a request names any resource (Ray's `resources_specified`). */
export function resourcesSpecified(req: TaskRequest): boolean {
  return req.cpus > 0 || req.gpus > 0 || req.memory > 0 || Object.keys(req.custom).length > 0;
}

/**
 * Ray's message for a job that has not ended (JobInfo.__post_init__), and for one that ended
 * without a failure. A pending job's message also says what it waits for (`waiting`), after
 * Ray's words.
 */
export function rayStatusMessage(status: Exclude<JobStatus, 'FAILED'>, o: { request: TaskRequest; hasRuntimeEnv: boolean; waiting?: string | null }): string {
  switch (status) {
    case 'PENDING': {
      let m = 'Job has not started yet.';
      if (resourcesSpecified(o.request)) m += ' It may be waiting for resources (CPUs, GPUs, memory, custom resources) to become available.';
      if (o.hasRuntimeEnv) m += ' It may be waiting for the runtime environment to be set up.';
      return o.waiting ? `${m} (${o.waiting})` : m;
    }
    case 'RUNNING':
      return 'Job is currently running.';
    case 'STOPPED':
      return 'Job was intentionally stopped.';
    case 'SUCCEEDED':
      return 'Job finished successfully.';
  }
}
