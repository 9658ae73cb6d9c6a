/**
 * Placement: which pending task goes to which node, now.
 *
 * Order: higher priority first, then older job, then task index. A task that does not fit is
 * skipped so smaller tasks behind it can use what is free (backfilling). To keep a large task
 * from being overtaken forever, once it has waited longer than `starvationMs` it reserves one
 * node that could hold it (the one with the most free CPUs): from then on nothing behind it in
 * the queue is placed on that node, which therefore drains until the large task fits.
 */
import { applyPlacement, cloneCapacity, couldEverFit, describeRequest, fit, fromUnits, shortfall, type Capacity } from '../shared/resources.js';
import type { LiveJob, LiveState, LiveTask } from './state.js';

export interface PlannedPlacement {
  task: LiveTask;
  nodeId: string;
  gpuIds: number[];
}

export interface SchedulingPass {
  placements: PlannedPlacement[];
  /** Earliest time a task in back-off becomes eligible, if any. */
  nextWakeAt: number | null;
}

export function planPlacements(state: LiveState, now: number, starvationMs: number): SchedulingPass {
  const nodes = [...state.nodes.values()].filter((n) => !n.draining);
  const free = new Map<string, Capacity>(nodes.map((n) => [n.id, cloneCapacity(n.free)]));
  const reserved = new Map<string, string>(); // node id -> task id holding the reservation
  const placements: PlannedPlacement[] = [];
  let nextWakeAt: number | null = null;
  // Tasks of one job ask for the same thing: once one does not fit, the rest of the job waits too.
  const blocked = new Map<string, string>();

  for (const task of state.queued()) {
    const job = state.jobs.get(task.jobId);
    if (!job) continue;
    const blockedReason = blocked.get(job.id);
    if (blockedReason !== undefined && task.notBefore <= now) {
      task.reason = blockedReason;
      continue;
    }
    if (task.notBefore > now) {
      task.reason = `retrying after back-off (attempt ${task.attempt + 1} in ${Math.ceil((task.notBefore - now) / 1000)}s)`;
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
      task.reason = null;
      continue;
    }
    task.reason = waitReason(state, job, free);
    if (now - task.waitingSince >= starvationMs) {
      let target: { id: string; name: string; cpus: number } | null = null;
      for (const node of nodes) {
        if (reserved.has(node.id) || !couldEverFit(node.capacity, job.request)) continue;
        const cpus = free.get(node.id)?.cpus ?? 0;
        if (!target || cpus > target.cpus) target = { id: node.id, name: node.name, cpus };
      }
      if (target) {
        reserved.set(target.id, task.id);
        task.reason += `; holds a reservation on ${target.name}`;
      }
    }
    blocked.set(job.id, task.reason);
  }
  return { placements, nextWakeAt };
}

/** "needs 4 CPUs; largest free: 2 on node-a" */
export function waitReason(state: LiveState, job: LiveJob, free?: Map<string, Capacity>): string {
  const nodes = [...state.nodes.values()].filter((n) => !n.draining);
  if (nodes.length === 0) return `needs ${describeRequest(job.request)}; no nodes are registered`;
  let largest: { name: string; cap: Capacity } | null = null;
  for (const n of nodes) {
    const cap = free?.get(n.id) ?? n.free;
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
export function unschedulableReason(state: LiveState, job: LiveJob): string | null {
  const nodes = [...state.nodes.values()];
  if (nodes.length === 0) return null; // a cluster still starting up: wait for nodes
  if (nodes.some((n) => couldEverFit(n.capacity, job.request))) return null;
  const biggest = nodes.reduce((a, b) => (b.capacity.cpus > a.capacity.cpus ? b : a));
  const short = shortfall(biggest.capacity, job.request) ?? describeRequest(job.request);
  const [need, have] = short.split('; free: ');
  return `no node can ever provide ${need} (largest node ${biggest.name} has ${have ?? 'less'})`;
}
