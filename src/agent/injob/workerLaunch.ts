/**
 * Start a warm worker for a job: the same package copy, runtime env, variables and sandbox as
 * the job's own tasks. Its tasks' resources are logical (they decide where and when they run): the
 * worker gets a CPU share weighted by its tasks' CPUs and the job's own memory limit.
 */
import path from 'node:path';
import type { Assignment } from '../../shared/protocol/index.js';
import type { TaskRequest } from '../../shared/resources.js';
import type { WorkerHandle } from '../launcher.js';
import { prepareWorker, type PrepareDeps } from '../prepareWorker.js';
import type { JobState } from './jobState.js';

export interface LaunchDeps extends PrepareDeps {
  /** Where the in-job libraries are on this agent (see runtimeLibs.ts). */
  libs: { python: string; nodeModules: string; nodeWorker: string };
}

/** Variables and paths (read-only, writable) every process of a job needs to reach its agent and its object store. */
export function injobEnv(job: JobState, libs: LaunchDeps['libs'], env: Record<string, string>): { env: Record<string, string>; paths: string[]; writable: string[] } {
  const out = { ...env };
  out.RAYSUB_TASK_SOCKET = job.sockPath;
  out.RAYSUB_JOB_TOKEN = job.token;
  const direct = job.objects.dirs.direct;
  if (direct) out.RAYSUB_OBJECT_DIR = direct;
  out.PYTHONPATH = [libs.python, ...(env.PYTHONPATH ? [env.PYTHONPATH] : [])].join(':');
  out.NODE_PATH = [...(env.NODE_PATH ? [env.NODE_PATH] : []), libs.nodeModules].join(':');
  return { env: out, paths: [...job.paths, libs.python, libs.nodeModules], writable: direct ? [direct] : [] };
}

export interface LaunchedWorker {
  handle: WorkerHandle;
  cleanup: () => void;
}

export async function launchWorker(deps: LaunchDeps, job: JobState, o: { workerId: string; lang: 'python' | 'node'; req: TaskRequest; gpuIds: number[]; signal: AbortSignal; output: (text: string) => void }): Promise<LaunchedWorker> {
  const ctx = job.ctx;
  if (!ctx) throw new Error(`no job context for ${job.jobId} on this node`);
  // The job's own context, as its tasks' assignments carry it; the worker is one task of its own.
  const a: Assignment = { task_id: `${job.jobId}:${o.workerId}`, attempt: 1, task_index: 0, task_count: 1, entrypoint: '', resources: o.req, gpu_ids: o.gpuIds, timeout_s: null, job: ctx };
  // The same recipe as the job's own tasks, the sandbox requirement included.
  const prepared = await prepareWorker(deps, a, { key: `${path.basename(job.dir)}.${o.workerId}`, group: null, signal: o.signal, output: o.output });
  const cleanup = (): void => {
    deps.workspace.removeTaskDir(prepared.dir);
    prepared.release();
  };
  try {
    const api = injobEnv(job, deps.libs, prepared.env);
    api.env.RAYSUB_WORKER_ID = o.workerId;
    const command = o.lang === 'python' ? 'exec python3 -m raysub.worker' : `exec node ${deps.libs.nodeWorker}`;
    const handle = await deps.launcher.launch({
      key: path.basename(prepared.dir),
      argv: ['/bin/sh', '-c', command],
      cwd: prepared.dir,
      env: api.env,
      // As in Ray, a task's CPUs and memory are logical: they weight its share of the CPUs (no quota,
      // no pinning), and its worker is held to the job's own memory limit, not to its `memory=`.
      resources: { ...o.req, memory: job.memory },
      cpuQuota: false,
      gpuIds: o.gpuIds,
      network: ctx.sandbox.network ?? 'host',
      readOnlyPaths: [...prepared.readOnlyPaths, ...api.paths],
      writablePaths: api.writable,
      userNamespaces: ctx.sandbox.user_namespaces === true,
    });
    return { handle, cleanup };
  } catch (err) {
    cleanup();
    throw err;
  }
}
