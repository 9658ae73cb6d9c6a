/**
 * A task taken in from one of this node's clients: its arguments resolved, one submitter's actor
 * calls kept in order, then queued here (or relayed to the head, for an actor elsewhere). A task
 * whose arguments are all here already (a small task's usual case) is queued at once, without a
 * promise.
 */
import { runGuarded } from '../../shared/boundary.js';
import type { Logger } from '../../shared/log.js';
import type { Executor } from './executor.js';
import { pinArgs, type Task } from './jobState.js';
import { errorValue, type ObjValue } from './objects.js';

export interface AcceptDeps {
  executor: Executor;
  log: Logger;
  /** Hand a task to the head (its actor lives on another node). */
  toHead(task: Task): void;
}

export function acceptTask(task: Task, d: AcceptDeps): void {
  const { job, spec } = task;
  job.live.set(spec.id, task);
  pinArgs(task);
  const deps = (): Promise<void> =>
    Promise.all(spec.deps.map(async (dep) => task.deps.set(dep.id, await job.objects.whenReady(dep.id, dep.owner)))).then(() => undefined);
  if (spec.kind === 'actor_call') {
    const aid = spec.actor_id ?? '';
    const prev = job.callChains.get(aid) ?? Promise.resolve();
    const next = prev.then(async () => {
      await deps();
      const home = job.actors.has(aid) ? 'local' : await (job.actorHome.get(aid) ?? Promise.resolve('remote' as const));
      if (home === 'local') d.executor.actors.call(task);
      else d.toHead(task);
    });
    job.callChains.set(aid, next.catch((err: unknown) => internalError(task, err, d)));
    return;
  }
  if (spec.kind === 'actor_create') {
    let decide: (h: 'local' | 'remote') => void = () => undefined;
    job.actorHome.set(spec.actor_id ?? spec.id, new Promise((r) => (decide = r)));
    task.decide = decide;
  }
  if (readyDeps(task)) {
    try {
      d.executor.enqueue(task);
    } catch (err) {
      internalError(task, err, d);
    }
    return;
  }
  deps()
    .then(() => d.executor.enqueue(task))
    .catch((err: unknown) => internalError(task, err, d));
}

/** Record a task's arguments' values if every one of them is ready here; false (nothing recorded) if one is not. */
export function readyDeps(task: Task): boolean {
  const deps = task.spec.deps;
  if (deps.length === 0) return true;
  const objects = task.job.objects;
  for (const dep of deps) if (!objects.get(dep.id)) return false;
  for (const dep of deps) task.deps.set(dep.id, objects.get(dep.id) as ObjValue);
  return true;
}

/** Something went wrong in the agent while handling a task: the task fails saying so, and the agent goes on. */
function internalError(task: Task, err: unknown, d: AcceptDeps): void {
  d.log.error({ err, job: task.job.jobId, task: task.spec.name }, 'in-job task failed inside the agent');
  runGuarded(d.log, 'failing a task', () => d.executor.finish(task, errorValue('AgentError', `the agent could not run ${task.spec.name}: ${(err as Error).message}`, task.spec.name)));
}
