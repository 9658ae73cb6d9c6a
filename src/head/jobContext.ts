/**
 * What an agent is told about a job: the assignment of one of its tasks, and the job context an
 * in-job task carries. Both are built here, from the job's live record.
 */
import { RaysubError } from '../shared/errors.js';
import type { Assignment, JobContext, RuntimeEnv } from '../shared/protocol/index.js';
import type { JobView, TaskView } from './state.js';

const PACKAGE_URI = /^gcs:\/\/(.+)$/;

/** The package name in a `gcs://<name>` URI, or null for none or another scheme. */
export function packageNameOf(uri: string | undefined): string | null {
  if (!uri) return null;
  const m = PACKAGE_URI.exec(uri);
  return m ? (m[1] ?? null) : null;
}

export function assignmentOf(job: JobView | undefined, task: TaskView): Assignment {
  if (!job) throw new RaysubError('INTERNAL', `no live job for task ${task.id}`);
  const env = job.runtimeEnv as RuntimeEnv;
  return {
    task_id: task.id,
    attempt: task.attempt,
    job_id: job.id,
    task_index: task.idx,
    task_count: job.parallel,
    entrypoint: job.entrypoint,
    working_dir_package: packageNameOf(env.working_dir),
    runtime_env: env,
    env_vars: env.env_vars ?? {},
    resources: job.request,
    gpu_ids: [...task.gpuIds],
    timeout_s: job.timeoutS,
    sandbox: env.sandbox ?? {},
    metadata: job.metadata,
  };
}

export function jobContextOf(jobId: string, job: JobView | undefined): JobContext {
  const env = (job?.runtimeEnv ?? {}) as RuntimeEnv;
  return { job_id: jobId, working_dir_package: packageNameOf(env.working_dir), runtime_env: env, env_vars: env.env_vars ?? {}, sandbox: env.sandbox ?? {} };
}
