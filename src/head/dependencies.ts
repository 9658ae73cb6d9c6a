/**
 * Jobs that run after others (`--after`, `--after-any`): what a dependency's end means for the
 * job waiting on it, and how a waiting job says what it waits for. Pure functions of the live view
 * and the statuses; the settler applies them when a job ends.
 */
import { RaysubError } from '../shared/errors.js';
import { isTerminal, type JobStatus } from '../shared/protocol/index.js';
import type { Dependency, JobView, LiveView } from './state.js';

export type DependencyVerdict = 'wait' | 'satisfied' | 'failed';

/** `after`: it must have SUCCEEDED; `after_any`: it must have ended, however. */
export function dependencyVerdict(dep: Dependency, status: JobStatus): DependencyVerdict {
  if (!isTerminal(status)) return 'wait';
  return dep.any || status === 'SUCCEEDED' ? 'satisfied' : 'failed';
}

/** The message of a job failed because a job it runs after did not succeed. */
export function dependencyFailure(dep: Dependency, status: JobStatus): string {
  return `job ${dep.id}, which it runs after, ended ${status}; --after needs it to succeed`;
}

/** Refuse dependencies on the job itself or on jobs that do not exist (so they never form a cycle). */
export function checkDependencies(row: { id: string; after_jobs?: string | null }, exists: (id: string) => boolean): void {
  for (const dep of row.after_jobs ? (JSON.parse(row.after_jobs) as Dependency[]) : []) {
    if (dep.id === row.id) throw new RaysubError('INVALID_DEPENDENCY', `job ${row.id} cannot run after itself`);
    if (!exists(dep.id)) throw new RaysubError('INVALID_DEPENDENCY', `job ${dep.id}, which ${row.id} would run after, does not exist`);
  }
}

const SHOWN = 3;

/** "waiting for train-1 to succeed (RUNNING), prep to end (PENDING)", or null when it waits on none. */
export function dependencyWaitReason(state: LiveView, job: JobView): string | null {
  if (job.waitingOn.size === 0) return null;
  const parts = job.after
    .filter((d) => job.waitingOn.has(d.id))
    .map((d) => `${d.id} to ${d.any ? 'end' : 'succeed'} (${state.job(d.id)?.status ?? 'ending'})`);
  const more = parts.length > SHOWN ? ` and ${parts.length - SHOWN} more` : '';
  return `waiting for ${parts.slice(0, SHOWN).join(', ')}${more}`;
}
