/**
 * A warm worker's process: launched in the job's sandbox, its output split into prefixed lines
 * for the job's log, its exit (or a launch that failed) told once. Every callback runs inside an
 * error boundary.
 */
import { toRaysubError, type RaysubError } from '../../shared/errors.js';
import { guarded } from '../../shared/boundary.js';
import type { Logger } from '../../shared/log.js';
import type { WorkerHandle } from '../launcher.js';
import type { JobState, Task, WorkerProc } from './jobState.js';
import { LineSplitter } from './lines.js';
import { launchWorker, type LaunchDeps, type LaunchedWorker } from './workerLaunch.js';

export interface WorkerProcessHooks {
  output(job: JobState, stream: 'stdout' | 'stderr', data: Buffer): void;
  /** The process is gone (`why` says how it ended; `clean`: it exited with code 0). */
  exited(w: WorkerProc, why: string, clean: boolean): void;
  /** It never started. */
  failed(w: WorkerProc, err: RaysubError): void;
}

export function startWorkerProcess(w: WorkerProc, label: string, o: { launch: LaunchDeps; signal: AbortSignal; killGraceMs: number; log: Logger; hooks: WorkerProcessHooks }): void {
  const { job } = w;
  const { hooks, log } = o;
  const out = { stdout: new LineSplitter(`(${label}) `), stderr: new LineSplitter(`(${label}) `) };
  launchWorker(o.launch, job, { workerId: w.id, lang: w.lang, req: w.req, gpuIds: w.gpuIds, signal: o.signal, output: (t) => hooks.output(job, 'stdout', Buffer.from(t)) }).then(
    guarded(log, 'in-job worker start', ({ handle, cleanup }: LaunchedWorker) => {
      w.handle = handle;
      for (const s of ['stdout', 'stderr'] as const) {
        handle[s].on('data', guarded(log, 'in-job worker output', (d: Buffer) => hooks.output(job, s, out[s].push(d))));
      }
      if (w.state === 'dead' || job.ended) stopWorkerProcess(w, o.killGraceMs, log);
      handle.exited.then(
        guarded(log, 'in-job worker exit', (exit: Awaited<WorkerHandle['exited']>) => {
          cleanup();
          for (const s of ['stdout', 'stderr'] as const) {
            const rest = out[s].flush();
            if (rest.length) hooks.output(job, s, rest);
          }
          hooks.exited(w, `exit code ${exit.code ?? exit.signal ?? '?'}${exit.oom ? ', killed for exceeding its memory limit' : ''}`, exit.code === 0);
        }),
        guarded(log, 'in-job worker exit', (err: unknown) => hooks.exited(w, `lost: ${(err as Error).message}`, false)),
      );
    }),
    guarded(log, 'in-job worker start failure', (err: unknown) => hooks.failed(w, toRaysubError(err))),
  );
}

/** A new worker's record, starting, for `task` (an actor's creation, or its first task). */
export function newWorker(job: JobState, task: Task, key: string, actorId: string | null): WorkerProc {
  const w: WorkerProc = {
    id: `w${++job.workerSeq}`,
    job,
    lang: task.lang,
    key,
    req: task.spec.resources,
    gpuIds: task.holding?.gpuIds ?? [],
    actorId,
    state: 'starting',
    conn: null,
    handle: null,
    task: null,
    first: task,
    idleSince: Date.now(),
    slot: false,
    evicted: false,
    blocked: false,
    functions: new Set(),
  };
  job.workers.add(w);
  return w;
}

/**
 * The task waiting for a new worker of `w`'s job and shape to start (the oldest such), taken from
 * it so `w`, idle now, runs it at once; the new worker, once up, takes the next task in the queue.
 */
export function takeStarting(w: WorkerProc): Task | null {
  for (const x of w.job.workers) {
    if (x.state !== 'starting' || x.actorId !== null || x.key !== w.key || !x.first) continue;
    const t = x.first;
    x.first = null;
    return t;
  }
  return null;
}

/** How its output lines are prefixed in the job's log. */
export function workerLabel(w: WorkerProc, task: Task): string {
  return w.actorId ? `${task.spec.name.replace(/\.__init__$/, '')} actor` : `worker ${w.id}`;
}

/** Stop a worker's process (it is told gone once it has exited). */
export function stopWorkerProcess(w: WorkerProc, killGraceMs: number, log: Logger): void {
  w.handle?.terminate(killGraceMs).catch((err: unknown) => log.warn({ err, worker: w.id }, 'could not stop an in-job worker'));
}
