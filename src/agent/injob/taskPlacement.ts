/**
 * Where one queued in-job task goes now, decided against this node's ledger: run here (with the
 * resources it holds), wait here, hand it to the head (another node has room now, this node never
 * could, it must run on another node, or its placement group's bundle is elsewhere), or fail.
 *
 * Resources are logical, as in Ray: they decide where and when a task runs. A job limited by
 * `ray.init(num_cpus=n)` holds at most n CPUs here at once; its tasks past that wait here (other
 * jobs' tasks of the same shape go ahead of them). A task in a placement group takes from its
 * bundle's reservation, never from the node's free resources.
 */
import type { Lang, Usage } from '../../shared/protocol/index.js';
import { toUnits, type TaskRequest } from '../../shared/resources.js';
import { fitsUsage, type Holding, type NodeLedger } from './ledger.js';
import type { Bundle, JobState, Task } from './jobState.js';

export type PlaceDecision =
  | { kind: 'run'; holding: Holding; bundle?: Bundle }
  /** Wait here (`spillable`: another node might take it once the head's view is fresh). */
  | { kind: 'wait'; spillable: boolean }
  /** Its job is at its CPU limit: it waits, and tasks behind it may go. */
  | { kind: 'skip' }
  /** To the head; `took` is what it takes of that node's free resources in the head's last view. */
  | { kind: 'spill'; took: Usage | null }
  | { kind: 'fail'; type: 'TaskPlacementGroupRemoved' | 'UnschedulableError'; message: string };

export interface PlaceContext {
  ledger: NodeLedger;
  me: string;
  /** Free resources of other nodes as the head last told (read lazily, once per pass). */
  remoteFree: () => Usage[];
}

/** The bundles of `job` on this node a task placed in (`group`, `index`; -1: any) may use. */
export function bundlesFor(job: JobState, group: string, index: number): Bundle[] {
  const out: Bundle[] = [];
  for (const b of job.bundles.values()) if (b.group === group && (index < 0 || b.index === index)) out.push(b);
  return out;
}

export function placeTask(task: Task, c: PlaceContext): PlaceDecision {
  const { job, spec } = task;
  const req = spec.resources;
  const p = spec.placement;
  if (p && 'group' in p) {
    const bundles = bundlesFor(job, p.group, p.bundle);
    if (bundles.length === 0) {
      // Its bundle is on another node (or not placed yet): the head knows where.
      if (task.origin === 'local') return { kind: 'spill', took: null };
      return { kind: 'fail', type: 'TaskPlacementGroupRemoved', message: `the placement group of ${spec.name} was removed` };
    }
    for (const b of bundles) {
      const h = c.ledger.tryTakeWithin(b.free, req, job.jobId);
      if (h) return { kind: 'run', holding: h, bundle: b };
    }
    if (!bundles.some((b) => fitsUsage(capacityAsUsage(b.holding), req))) {
      return { kind: 'fail', type: 'UnschedulableError', message: `${spec.name} asks for more than its placement group bundle holds` };
    }
    return { kind: 'wait', spillable: false };
  }
  if (p && 'node' in p && p.node !== c.me && task.origin === 'local') return { kind: 'spill', took: null };
  const limited = job.cpuLimit !== null;
  if (limited && c.ledger.cpusHeldBy(job.jobId) + toUnits(req.cpus) > (job.cpuLimit ?? 0)) {
    return c.ledger.couldEverFit(req) ? { kind: 'skip' } : { kind: 'spill', took: null };
  }
  const h = c.ledger.tryTake(req, job.jobId);
  if (h) return { kind: 'run', holding: h };
  // A job limited to its own CPUs here, a task the head placed here, or one pinned to this node: it waits.
  if (task.origin !== 'local' || (limited && c.ledger.couldEverFit(req)) || (p && 'node' in p && !p.soft)) return { kind: 'wait', spillable: false };
  const remote = c.remoteFree();
  const never = !c.ledger.couldEverFit(req);
  const elsewhere = remote.find((f) => fitsUsage(f, req)) ?? null;
  if (!never && !elsewhere) return { kind: 'wait', spillable: remote.length > 0 };
  return { kind: 'spill', took: elsewhere };
}

function capacityAsUsage(h: Holding): Usage {
  const gpus: number[] = [];
  for (const g of h.gpuIds) gpus[g] = toUnits(h.req.gpus) < 10_000 ? toUnits(h.req.gpus) : 10_000;
  const custom: Record<string, number> = {};
  for (const [k, v] of Object.entries(h.req.custom)) custom[k] = toUnits(v);
  return { cpus: toUnits(h.req.cpus), memory: h.req.memory, gpus: Array.from(gpus, (x) => x ?? 0), custom };
}

/** Other nodes' free resources as the head last told, as copies placement may take from (none on a node alone). */
export function othersFree(free: Record<string, Usage>, me: string): Usage[] {
  const out: Usage[] = [];
  for (const id in free) {
    const f = free[id];
    if (id !== me && f) out.push({ ...f, gpus: [...f.gpus], custom: { ...f.custom } });
  }
  return out;
}

/** A resource shape (and GPUs): a worker only runs tasks that asked for exactly what its limits are. */
export function shapeKey(lang: Lang, req: TaskRequest, gpuIds: readonly number[]): string {
  const custom = Object.entries(req.custom)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
  return `${lang}|${req.cpus}|${req.gpus}|${req.memory}|${custom}|${gpuIds.join(',')}`;
}

/** A task's resource shape without GPU ids, computed once per task. */
export function taskShape(task: Task): string {
  return (task.shape ??= shapeKey(task.lang, task.spec.resources, []));
}
