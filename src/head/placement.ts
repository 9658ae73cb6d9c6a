/**
 * Placement: which pending task goes to which node, now. Pure functions of the live view, the
 * time and the policy; the engine applies what they decide.
 *
 * A node takes new work when it is alive, not draining (nor cordoned), not unhealthy (its agent
 * reports its work dir unwritable), has contacted this head since it started,
 * offers what the job's sandbox settings require, and has a task slot and the resources free.
 * Order: higher priority first, then older job, then task index. A task that does not fit is
 * skipped so smaller tasks behind it can use what is free (backfilling). To keep a large task
 * from being overtaken forever, once it has waited longer than `starvationMs` it reserves one
 * node that could hold it (the one with the most free CPUs): from then on nothing behind it in
 * the queue is placed on that node, which therefore drains until the large task fits. A job that
 * no alive node could ever run waits `unschedulableGraceMs` for one to join, then fails.
 */
import type { SandboxMode, TaskRef } from '../shared/protocol/index.js';
import { applyPlacement, cloneCapacity, couldEverFit, describeRequest, fit, fromUnits, shortfall, type Capacity, type ReadonlyCapacity, type TaskRequest } from '../shared/resources.js';
import { dependencyWaitReason } from './dependencies.js';
import type { JobView, LiveView, NodeView, TaskView } from './state.js';

export interface PlacementPolicy {
  now: number;
  starvationMs: number;
  /** How long a job no alive node could ever run waits for one to join before it fails. */
  unschedulableGraceMs: number;
  /** Since when each job has been found unplaceable (from the previous pass). */
  unplaceableSince: ReadonlyMap<string, number>;
}

export interface PlannedPlacement {
  task: TaskView;
  nodeId: string;
  gpuIds: number[];
}

export interface SchedulingPass {
  placements: PlannedPlacement[];
  /** Why each task that stays queued waits. */
  reasons: [task: TaskView, reason: string][];
  /** Jobs no alive node could ever run, and since when (carry it to the next pass). */
  unplaceable: Map<string, number>;
  /** Jobs to fail as UNSCHEDULABLE now, with the reason. */
  fail: [job: JobView, reason: string][];
  /** Earliest time something changes without an event (a back-off or a grace period ends). */
  nextWakeAt: number | null;
}

const STRENGTH: Record<SandboxMode, number> = { none: 0, process: 1, bwrap: 2 };

/** What a job pinned to the head node says it waits for (Ray's rule for a driver that asks for no resources). */
export const HEAD_NODE = "the head node (where a job that asks for no resources runs, as on Ray; RAY_JOB_ALLOW_DRIVER_ON_WORKER_NODES=1 on the head lets it run on any node)";

/** What the job's sandbox settings (or its place on the head node) need that this node lacks, or null. */
export function missingOn(node: NodeView, job: JobView): string | null {
  if (job.driverOnHead && !node.head) return HEAD_NODE;
  const want = job.runtimeEnv.sandbox;
  const mode = node.sandbox.mode;
  if (want?.require && STRENGTH[mode] < STRENGTH[want.require]) return `a "${want.require}" sandbox`;
  // Only bubblewrap gives a task a network namespace of its own.
  if (want?.network === 'none' && mode !== 'bwrap') return 'network isolation (a "bwrap" sandbox)';
  return null;
}

/** Whether the node takes new work at all: not draining or cordoned, not unhealthy, heard from since the head started. */
export function takesWork(node: NodeView): boolean {
  return !node.draining && node.unhealthy === null && node.contacted;
}

/** Whether the node takes new work for this job (resources aside). */
function open(node: NodeView, job: JobView): boolean {
  return takesWork(node) && missingOn(node, job) === null;
}

export function planPlacements(state: LiveView, policy: PlacementPolicy): SchedulingPass {
  const { now } = policy;
  const nodes = state.nodeList().filter(takesWork);
  const free = new Map<string, Capacity>(nodes.map((n) => [n.id, cloneCapacity(n.free)]));
  const reserved = new Map<string, string>(); // node id -> task id holding the reservation
  const pass: SchedulingPass = { placements: [], reasons: [], unplaceable: new Map(), fail: [], nextWakeAt: null };
  const wakeAt = (t: number): void => {
    pass.nextWakeAt = pass.nextWakeAt === null ? t : Math.min(pass.nextWakeAt, t);
  };
  // Tasks of one job ask for the same thing: once one does not fit, the rest of the job waits too.
  const blocked = new Map<string, string>();
  // Tasks of separate jobs that ask for the same thing wait for the same reason: worked out once,
  // until a placement or a reservation changes what is free (hundreds of queued one-task jobs
  // would otherwise each have it worked out again in every pass).
  const alike = new Map<string, { never: string | null; reason?: string }>();
  // Per throttled job (`max_concurrent`): how many of its tasks are placed, this pass's included.
  const inFlight = new Map<string, number>();

  for (const task of state.queued()) {
    const job = state.job(task.jobId);
    if (!job) continue;
    const blockedReason = blocked.get(job.id);
    if (blockedReason !== undefined && task.notBefore <= now) {
      pass.reasons.push([task, blockedReason]);
      continue;
    }
    const waits = gateOf(state, job);
    if (waits !== null) {
      pass.reasons.push([task, waits]);
      blocked.set(job.id, waits);
      continue;
    }
    if (task.notBefore > now) {
      pass.reasons.push([task, `retrying after back-off (attempt ${task.attempt + 1} in ${Math.ceil((task.notBefore - now) / 1000)}s)`]);
      wakeAt(task.notBefore);
      continue;
    }
    if (job.maxConcurrent !== null) {
      const placed = inFlight.get(job.id) ?? state.tasksOfJob(job.id).filter((t) => t.state !== 'PENDING').length;
      inFlight.set(job.id, placed);
      if (placed >= job.maxConcurrent) {
        const reason = `throttled (${placed} running)`;
        pass.reasons.push([task, reason]);
        blocked.set(job.id, reason);
        continue;
      }
    }
    let best: { nodeId: string; gpuIds: number[]; score: number } | null = null;
    for (const node of nodes) {
      const holder = reserved.get(node.id);
      if (holder !== undefined && holder !== task.id) continue;
      const cap = free.get(node.id);
      if (!cap || missingOn(node, job)) continue;
      const placed = fit(cap, job.request);
      if (!placed) continue;
      // Spread: prefer the node left with the most free CPUs, then the fewest running tasks.
      const score = cap.cpus * 1000 - node.running.size;
      if (!best || score > best.score) best = { nodeId: node.id, gpuIds: placed.gpuIds, score };
    }
    if (best) {
      const cap = free.get(best.nodeId);
      if (cap) applyPlacement(cap, job.request, best.gpuIds, -1);
      pass.placements.push({ task, nodeId: best.nodeId, gpuIds: best.gpuIds });
      if (job.maxConcurrent !== null) inFlight.set(job.id, (inFlight.get(job.id) ?? 0) + 1);
      alike.clear();
      continue;
    }
    let reason: string;
    const like = requestKey(job);
    let memo = alike.get(like);
    if (!memo) alike.set(like, (memo = { never: neverReason(state, job) }));
    const never = memo.never;
    if (never !== null && job.waitForCapacity) {
      reason = `${never}; waiting for one to join`;
    } else if (never !== null) {
      const since = policy.unplaceableSince.get(job.id) ?? now;
      pass.unplaceable.set(job.id, since);
      const failAt = since + policy.unschedulableGraceMs;
      if (failAt <= now) {
        pass.fail.push([job, never]);
        blocked.set(job.id, never);
        continue;
      }
      wakeAt(failAt);
      reason = `${never}; fails as UNSCHEDULABLE in ${Math.ceil((failAt - now) / 1000)}s unless a node that can run it joins`;
    } else {
      if (memo.reason === undefined) {
        const heldFor = nodes.filter((n) => reserved.has(n.id) && !missingOn(n, job) && fit(free.get(n.id) ?? n.free, job.request));
        memo.reason = heldFor.length
          ? `needs ${describeRequest(job.request)}; ${heldFor.map((n) => n.name).join(', ')} ${heldFor.length > 1 ? 'are' : 'is'} held for a task that has waited longer`
          : waitReason(state, job, free);
      }
      reason = memo.reason;
      if (now - task.waitingSince >= policy.starvationMs) {
        const target = reservationTarget(nodes, job, reserved, free);
        if (target) {
          reserved.set(target.id, task.id);
          reason += `; holds a reservation on ${target.name}`;
          alike.clear();
        }
      }
    }
    pass.reasons.push([task, reason]);
    blocked.set(job.id, reason);
  }
  return pass;
}

/** What decides where a job's tasks may go and why they wait: jobs alike in it are placed alike. */
function requestKey(job: JobView): string {
  const r = job.request;
  const custom = Object.keys(r.custom).length ? JSON.stringify(Object.entries(r.custom).sort(([a], [b]) => a.localeCompare(b))) : '';
  const sandbox = job.runtimeEnv.sandbox;
  return `${r.cpus}|${r.gpus}|${r.memory}|${custom}|${job.driverOnHead}|${sandbox?.require ?? ''}|${sandbox?.network ?? ''}`;
}

/** Why a job waits whatever the nodes have free (held by the user, or for the jobs it runs after), or null. */
export function gateOf(state: LiveView, job: JobView): string | null {
  if (job.held) return `held (raysub job release ${job.id} lets it run)`;
  return dependencyWaitReason(state, job);
}

/** The node a starving task reserves: of those that could ever hold it, the one with the most free CPUs. */
function reservationTarget(nodes: readonly NodeView[], job: JobView, reserved: ReadonlyMap<string, string>, free: ReadonlyMap<string, Capacity>): NodeView | null {
  let target: NodeView | null = null;
  let most = -1;
  for (const node of nodes) {
    if (reserved.has(node.id) || missingOn(node, job) || !couldEverFit(node.capacity, job.request)) continue;
    const cpus = free.get(node.id)?.cpus ?? 0;
    if (cpus > most) {
      target = node;
      most = cpus;
    }
  }
  return target;
}

/** "needs 4 CPUs; largest free: 2 on node-a" */
export function waitReason(state: LiveView, job: JobView, free?: ReadonlyMap<string, Capacity>): string {
  const all = state.nodeList();
  const needs = `needs ${describeRequest(job.request)}`;
  if (all.length === 0) return `${needs}; no nodes are registered`;
  const nodes = all.filter((n) => open(n, job));
  if (nodes.length === 0) {
    if (all.some((n) => !n.contacted)) return `${needs}; waiting for nodes to reconnect after the head restarted`;
    const lacking = all.map((n) => missingOn(n, job)).find((m) => m !== null);
    if (lacking) return `needs ${lacking}; no node that has one takes work now`;
    const sick = all.find((n) => n.unhealthy !== null);
    return sick?.unhealthy ? `${needs}; no node takes work now (${sick.name} is unhealthy: ${sick.unhealthy.reason})` : `${needs}; every node is draining`;
  }
  let largest: { name: string; cap: ReadonlyCapacity } | null = null;
  for (const n of nodes) {
    const cap = free?.get(n.id) ?? n.free;
    if (!largest || cap.cpus > largest.cap.cpus) largest = { name: n.name, cap };
  }
  if (!largest) return needs;
  const short = shortfall(largest.cap, job.request);
  if (short) {
    const [need, have] = short.split('; free: ');
    return `needs ${need}; largest free: ${have} on ${largest.name}`;
  }
  return `${needs}; largest free: ${fromUnits(largest.cap.cpus)} CPUs on ${largest.name}`;
}

/**
 * Why no alive node (draining and not yet reconnected ones included) could ever run this job, or
 * null if one could. With no nodes at all (a cluster starting up) the answer is null: wait.
 */
export function neverReason(state: LiveView, job: JobView): string | null {
  const nodes = state.nodeList();
  if (nodes.length === 0) return null;
  const suitable = nodes.filter((n) => missingOn(n, job) === null);
  if (suitable.length === 0 && job.driverOnHead && !nodes.some((n) => n.head)) return `no node can ever provide ${HEAD_NODE}: the head's own agent is not registered`;
  if (suitable.length === 0) {
    const first = nodes[0] as NodeView;
    const have = [...new Set(nodes.map((n) => n.sandbox.mode))].join(', ');
    return `no node can ever provide ${missingOn(first, job) ?? 'what it needs'} (the nodes have: ${have})`;
  }
  if (suitable.some((n) => couldEverFit(n.capacity, job.request))) return null;
  const biggest = suitable.reduce((a, b) => (b.capacity.cpus > a.capacity.cpus ? b : a));
  const short = shortfall(biggest.capacity, job.request) ?? describeRequest(job.request);
  const [need, have] = short.split('; free: ');
  const sized = `largest node ${biggest.name} has ${have ?? 'less'}`;
  // A node that could hold it but lacks what the job's settings need: say so, not only the sizes.
  const barred = nodes.find((n) => missingOn(n, job) !== null && couldEverFit(n.capacity, job.request));
  const lacks = barred ? missingOn(barred, job) : null;
  if (barred && lacks) return `no node that provides ${lacks} can ever provide ${need} (${sized}; ${barred.name} could, but lacks ${lacks})`;
  return `no node can ever provide ${need} (${sized})`;
}

/** Which of the tasks an agent holds it must kill: stale attempts, and jobs being stopped. */
export function killsFor(state: LiveView, nodeId: string, held: readonly TaskRef[]): TaskRef[] {
  return held.filter((ref) => {
    const t = state.task(ref.task_id);
    if (!t || t.attempt !== ref.attempt || t.nodeId !== nodeId || t.state === 'PENDING') return true;
    const job = state.job(t.jobId);
    return !job || job.stopRequested || job.failedTask !== null;
  });
}

export type InjobChoice = { kind: 'placed'; nodeId: string; gpuIds: number[] } | { kind: 'wait' } | { kind: 'never'; reason: string };

/**
 * Where an in-job task its agent could not run goes now: of the nodes open to its job, the one
 * with the most free CPUs that holds it (`onlyNode`: that node or none; not alive: never).
 */
export function placeInjob(state: LiveView, driver: JobView, req: TaskRequest, onlyNode?: string): InjobChoice {
  // The job's own tasks may be held to the head node; what they submit goes anywhere (as Ray's tasks).
  const job = { ...driver, driverOnHead: false };
  if (onlyNode !== undefined) {
    const only = state.node(onlyNode);
    if (!only) return { kind: 'never', reason: `the node it must run on (${onlyNode}) is not alive` };
    if (!couldEverFit(only.capacity, req)) return { kind: 'never', reason: `the node it must run on (${only.name}) can never provide ${describeRequest(req)}` };
  }
  let best: { node: NodeView; gpuIds: number[] } | null = null;
  for (const n of state.nodeList()) {
    if (!open(n, job) || (onlyNode !== undefined && n.id !== onlyNode)) continue;
    const p = fit(n.free, req);
    if (p && (!best || n.free.cpus > best.node.free.cpus)) best = { node: n, gpuIds: p.gpuIds };
  }
  if (best) return { kind: 'placed', nodeId: best.node.id, gpuIds: best.gpuIds };
  const never = neverReason(state, { ...job, request: req });
  return never === null ? { kind: 'wait' } : { kind: 'never', reason: never };
}
