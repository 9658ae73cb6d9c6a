/**
 * What an agent is told about a job: the assignment of one of its tasks, and the job context an
 * in-job task carries. Both are built here, from the job's live record.
 */
import { RaysubError } from '../shared/errors.js';
import type { Assignment, JobContext, RuntimeEnv } from '../shared/protocol/index.js';
import { packageNameOfUri, packageScheme } from '../shared/protocol/packages.js';
import type { JobView, TaskView } from './state.js';

/** The package name in a `gcs://<name>` URI, or null for none, another scheme, or an invalid name. */
export function packageNameOf(uri: string | undefined): string | null {
  const name = packageNameOfUri(uri);
  return name !== null && packageScheme(name) !== null ? name : null;
}

/** Every package a runtime env names. */
export function packagesOf(env: RuntimeEnv): string[] {
  return [env.working_dir, ...(env.py_modules ?? [])].map((u) => packageNameOf(u)).filter((n): n is string => n !== null);
}

/** One attempt of a task, for the node that runs it: the task's part and the job's context. */
export function assignmentOf(job: JobView | undefined, task: TaskView): Assignment {
  if (!job) throw new RaysubError('INTERNAL', `no live job for task ${task.id}`);
  return {
    task_id: task.id,
    attempt: task.attempt,
    task_index: task.idx,
    task_count: job.parallel,
    ...(job.arrayIndices ? { array_index: job.arrayIndices[task.idx] ?? task.idx } : {}),
    entrypoint: job.entrypoint,
    resources: job.request,
    gpu_ids: [...task.gpuIds],
    timeout_s: job.timeoutS,
    job: jobContextOf(job.id, job),
  };
}

/**
 * What every worker of the job needs (src/shared/protocol/jobContext.ts), built here only: a job
 * field a worker reads is added to that schema, here, and where the agent uses it.
 */
export function jobContextOf(jobId: string, job: JobView | undefined): JobContext {
  const env = (job?.runtimeEnv ?? {}) as RuntimeEnv;
  return {
    job_id: jobId,
    working_dir_package: packageNameOf(env.working_dir),
    runtime_env: env,
    env_vars: env.env_vars ?? {},
    sandbox: env.sandbox ?? {},
    // A memory request is a limit only when the job asked for one (Ray only places by it).
    memory: job?.memoryLimit === true ? job.request.memory : 0,
    metadata: job?.metadata ?? null,
  };
}
