/**
 * Placement: which pending task goes to which node, now. Pure functions of the live view and the
 * time; the engine applies what they decide.
 *
 * Order: higher priority first, then older job, then task index. A task that does not fit is
 * skipped so smaller tasks behind it can use what is free (backfilling). To keep a large task
 * from being overtaken forever, once it has waited longer than `starvationMs` it reserves one
 * node that could hold it (the one with the most free CPUs): from then on nothing behind it in
 * the queue is placed on that node, which therefore drains until the large task fits.
 */
import { applyPlacement, cloneCapacity, couldEverFit, describeRequest, fit, fromUnits, shortfall, type Capacity, type ReadonlyCapacity, type TaskRequest } from '../shared/resources.js';
import type { JobView, LiveView, NodeView, TaskView } from './state.js';

export interface PlannedPlacement {
  task: TaskView;
  nodeId: string;
  gpuIds: number[];
}

export interface SchedulingPass {
  placements: PlannedPlacement[];
  /** Why each task that stays queued waits. */
  reasons: [task: TaskView, reason: string][];
  /** Earliest time a task in back-off becomes eligible, if any. */
  nextWakeAt: number | null;
}

export function planPlacements(state: LiveView, now: number, starvationMs: number): SchedulingPass {
  const nodes = state.nodeList().filter((n) => !n.draining);
  const free = new Map<string, Capacity>(nodes.map((n) => [n.id, cloneCapacity(n.free)]));
  const reserved = new Map<string, string>(); // node id -> task id holding the reservation
  const placements: PlannedPlacement[] = [];
  const reasons: [TaskView, string][] = [];
  let nextWakeAt: number | null = null;
  // Tasks of one job ask for the same thing: once one does not fit, the rest of the job waits too.
  const blocked = new Map<string, string>();

  for (const task of state.queued()) {
    const job = state.job(task.jobId);
    if (!job) continue;
    const blockedReason = blocked.get(job.id);
    if (blockedReason !== undefined && task.notBefore <= now) {
      reasons.push([task, blockedReason]);
      continue;
    }
    if (task.notBefore > now) {
      reasons.push([task, `retrying after back-off (attempt ${task.attempt + 1} in ${Math.ceil((task.notBefore - now) / 1000)}s)`]);
      nextWakeAt = nextWakeAt === null ? task.notBefore : Math.min(nextWakeAt, task.notBefore);
      continue;
    }
    let best: { nodeId: string; gpuIds: number[]; score: number } | null = null;
    for (const node of nodes) {
      const holder = reserved.get(node.id);
      if (holder !== undefined && holder !== task.id) continue;
      const cap = free.get(node.id);
      if (!cap) continue;
      const placed = fit(cap, job.request);
      if (!placed) continue;
      // Spread: prefer the node left with the most free CPUs, then the fewest running tasks.
      const score = cap.cpus * 1000 - node.running.size;
      if (!best || score > best.score) best = { nodeId: node.id, gpuIds: placed.gpuIds, score };
    }
    if (best) {
      const cap = free.get(best.nodeId);
      if (cap) applyPlacement(cap, job.request, best.gpuIds, -1);
      placements.push({ task, nodeId: best.nodeId, gpuIds: best.gpuIds });
      continue;
    }
    let reason = waitReason(state, job, free);
    if (now - task.waitingSince >= starvationMs) {
      let target: { id: string; name: string; cpus: number } | null = null;
      for (const node of nodes) {
        if (reserved.has(node.id) || !couldEverFit(node.capacity, job.request)) continue;
        const cpus = free.get(node.id)?.cpus ?? 0;
        if (!target || cpus > target.cpus) target = { id: node.id, name: node.name, cpus };
      }
      if (target) {
        reserved.set(target.id, task.id);
        reason += `; holds a reservation on ${target.name}`;
      }
    }
    reasons.push([task, reason]);
    blocked.set(job.id, reason);
  }
  return { placements, reasons, nextWakeAt };
}

/** "needs 4 CPUs; largest free: 2 on node-a" */
export function waitReason(state: LiveView, job: JobView, free?: Map<string, Capacity>): string {
  const nodes = state.nodeList().filter((n) => !n.draining);
  if (nodes.length === 0) return `needs ${describeRequest(job.request)}; no nodes are registered`;
  let largest: { name: string; cap: ReadonlyCapacity } | null = null;
  for (const n of nodes) {
    const cap = free?.get(n.id) ?? (n.free);
    if (!largest || cap.cpus > largest.cap.cpus) largest = { name: n.name, cap };
  }
  if (!largest) return `needs ${describeRequest(job.request)}`;
  const short = shortfall(largest.cap, job.request);
  if (short) {
    const [need, have] = short.split('; free: ');
    return `needs ${need}; largest free: ${have} on ${largest.name}`;
  }
  return `needs ${describeRequest(job.request)}; largest free: ${fromUnits(largest.cap.cpus)} CPUs on ${largest.name}`;
}

/** Why no node could ever run this request, or null if one could. */
export function unschedulableReason(state: LiveView, job: JobView): string | null {
  const nodes = state.nodeList();
  if (nodes.length === 0) return null; // a cluster still starting up: wait for nodes
  if (nodes.some((n) => couldEverFit(n.capacity, job.request))) return null;
  const biggest = nodes.reduce((a, b) => (b.capacity.cpus > a.capacity.cpus ? b : a));
  const short = shortfall(biggest.capacity, job.request) ?? describeRequest(job.request);
  const [need, have] = short.split('; free: ');
  return `no node can ever provide ${need} (largest node ${biggest.name} has ${have ?? 'less'})`;
}

export type InjobChoice = { kind: 'placed'; nodeId: string; gpuIds: number[] } | { kind: 'wait' } | { kind: 'never' };

/** Where an in-job task the agents could not run goes now: the node with the most free CPUs that holds it. */
export function placeInjob(state: LiveView, req: TaskRequest): InjobChoice {
  const nodes = state.nodeList().filter((n) => !n.draining);
  let best: { node: NodeView; gpuIds: number[] } | null = null;
  for (const n of nodes) {
    const p = fit(n.free, req);
    if (p && (!best || n.free.cpus > best.node.free.cpus)) best = { node: n, gpuIds: p.gpuIds };
  }
  if (best) return { kind: 'placed', nodeId: best.node.id, gpuIds: best.gpuIds };
  if (nodes.length > 0 && !nodes.some((n) => fit(n.capacity, req))) return { kind: 'never' };
  return { kind: 'wait' };
}
