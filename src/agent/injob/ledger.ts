/**
 * What this node holds right now, as the agent itself counts it: job tasks the head placed here
 * and in-job work of any origin. It is the authority on what may start on this node; the head's
 * view is advisory and follows the agent's reports.
 */
import type { Usage } from '../../shared/protocol/index.js';
import { applyPlacement, capacityDiff, capacityFromTotals, cloneCapacity, fit, toUnits, UNLIMITED_TASK_SLOTS, type Capacity, type TaskRequest } from '../../shared/resources.js';

export interface Holding {
  req: TaskRequest;
  gpuIds: number[];
  /**
   * The job whose in-job work holds it (reported to the head as usage), or null for a job task the
   * head placed here. When a job ends, everything its in-job work holds goes back at once.
   */
  owner: string | null;
  /** CPUs given back while the holder is blocked in `get`. */
  lentCpus: number;
  /**
   * A holding inside a placement group's bundle: its resources are taken from (and given back to)
   * the bundle's free capacity, not the node's (the bundle's own holding covers them on the node);
   * its task slot is the node's, as every running task's.
   */
  within?: { free: Capacity; done: boolean };
}

export class NodeLedger {
  readonly totals: Capacity;
  readonly free: Capacity;
  private readonly holdings = new Set<Holding>();
  /** Holdings inside bundles: each holds a task slot of the node. */
  private readonly withins = new Set<Holding>();

  constructor(totals: { num_cpus: number; num_gpus: number; memory: number; resources: Record<string, number>; task_slots?: number | undefined }) {
    this.totals = capacityFromTotals(totals);
    this.free = cloneCapacity(this.totals);
  }

  /** Reserve `req` for `owner` if it fits now (with the given GPUs, or any that fit). */
  tryTake(req: TaskRequest, owner: string | null, gpuIds?: readonly number[]): Holding | null {
    let ids: number[];
    if (gpuIds) {
      if (this.free.tasks < 1 || toUnits(req.cpus) > this.free.cpus || req.memory > this.free.memory) return null;
      for (const [k, v] of Object.entries(req.custom)) if (toUnits(v) > (this.free.custom[k] ?? 0)) return null;
      const share = toUnits(req.gpus) < 10_000 ? toUnits(req.gpus) : 10_000;
      if (gpuIds.some((g) => (this.free.gpus[g] ?? 0) < share)) return null;
      ids = [...gpuIds];
    } else {
      const placed = fit(this.free, req);
      if (!placed) return null;
      ids = placed.gpuIds;
    }
    return this.take(req, owner, ids);
  }

  /** Reserve without checking (a job task the head already placed here). */
  take(req: TaskRequest, owner: string | null, gpuIds: readonly number[]): Holding {
    const h: Holding = { req, gpuIds: [...gpuIds], owner, lentCpus: 0 };
    applyPlacement(this.free, req, h.gpuIds, -1);
    this.holdings.add(h);
    return h;
  }

  /** Reserve `req` inside a bundle's free capacity, if it fits there now. */
  tryTakeWithin(bundleFree: Capacity, req: TaskRequest, owner: string): Holding | null {
    const placed = this.free.tasks >= 1 ? fit(bundleFree, req) : null;
    if (!placed) return null;
    applyPlacement(bundleFree, req, placed.gpuIds, -1);
    const h: Holding = { req, gpuIds: placed.gpuIds, owner, lentCpus: 0, within: { free: bundleFree, done: false } };
    this.withins.add(h);
    this.free.tasks -= 1;
    return h;
  }

  /** Give back what `h` holds; releasing twice is harmless. */
  release(h: Holding): void {
    if (h.within) {
      if (h.within.done || !this.withins.delete(h)) return;
      h.within.done = true;
      applyPlacement(h.within.free, h.req, h.gpuIds, 1);
      h.within.free.cpus -= h.lentCpus;
      this.free.tasks += 1;
      return;
    }
    if (!this.holdings.delete(h)) return;
    applyPlacement(this.free, h.req, h.gpuIds, 1);
    this.free.cpus -= h.lentCpus;
  }

  /** Give back everything `owner`'s in-job work holds (its job ended); returns how many holdings went. */
  releaseOwner(owner: string): number {
    let n = 0;
    for (const h of [...this.holdings, ...this.withins]) {
      if (h.owner !== owner) continue;
      this.release(h);
      n++;
    }
    return n;
  }

  heldBy(owner: string): number {
    let n = 0;
    for (const h of [...this.holdings, ...this.withins]) if (h.owner === owner) n++;
    return n;
  }

  /**
   * The ledger's invariant, free + held == total in every dimension (lent CPUs count as free).
   * Null when it holds, else what differs.
   */
  imbalance(): string | null {
    const sum = cloneCapacity(this.free);
    for (const h of this.holdings) {
      applyPlacement(sum, h.req, h.gpuIds, 1);
      sum.cpus -= h.lentCpus;
    }
    sum.tasks += this.withins.size;
    return capacityDiff(sum, this.totals);
  }

  /** A holder blocked in `get` lends its CPUs back, so the tasks it waits for can run (as Ray does). */
  lend(h: Holding): void {
    if (h.lentCpus > 0) return;
    const pool = h.within ? (h.within.done ? null : h.within.free) : this.holdings.has(h) ? this.free : null;
    if (!pool) return;
    h.lentCpus = toUnits(h.req.cpus);
    pool.cpus += h.lentCpus;
  }

  /** ...and takes them again when it wakes, even if that briefly oversubscribes the node. */
  reclaim(h: Holding): void {
    if (h.lentCpus === 0) return;
    const pool = h.within ? (h.within.done ? null : h.within.free) : this.holdings.has(h) ? this.free : null;
    if (!pool) return;
    pool.cpus -= h.lentCpus;
    h.lentCpus = 0;
  }

  /** CPUs `owner`'s in-job work holds here now, net of what it lent (for `ray.init(num_cpus=n)`). */
  cpusHeldBy(owner: string): number {
    let n = 0;
    for (const h of this.holdings) if (h.owner === owner) n += toUnits(h.req.cpus) - h.lentCpus;
    return n;
  }

  couldEverFit(req: TaskRequest): boolean {
    return fit(this.totals, req) !== null;
  }

  /** What in-job work holds here, net of lent CPUs, for the head's view of this node. */
  injobUsage(): Usage {
    const u: Usage = { cpus: 0, memory: 0, gpus: this.totals.gpus.map(() => 0), custom: {}, tasks: 0 };
    for (const h of this.holdings) {
      if (h.owner === null) continue;
      u.tasks = (u.tasks ?? 0) + 1;
      u.cpus += toUnits(h.req.cpus) - h.lentCpus;
      u.memory += h.req.memory;
      for (const [k, v] of Object.entries(h.req.custom)) u.custom[k] = (u.custom[k] ?? 0) + toUnits(v);
      const share = toUnits(h.req.gpus) < 10_000 ? toUnits(h.req.gpus) : 10_000;
      for (const g of h.gpuIds) if (g < u.gpus.length) u.gpus[g] = (u.gpus[g] ?? 0) + share;
    }
    u.tasks = (u.tasks ?? 0) + this.withins.size;
    u.cpus = Math.max(0, u.cpus);
    return u;
  }
}

/** Whether a request fits a free-capacity snapshot (the head's view of another node). */
export function fitsUsage(free: Usage, req: TaskRequest): boolean {
  const cap: Capacity = { cpus: free.cpus, memory: free.memory, gpus: [...free.gpus], custom: { ...free.custom }, tasks: free.tasks ?? UNLIMITED_TASK_SLOTS };
  return fit(cap, req) !== null;
}

export function takeFromUsage(free: Usage, req: TaskRequest): void {
  const cap: Capacity = { cpus: free.cpus, memory: free.memory, gpus: free.gpus, custom: free.custom, tasks: free.tasks ?? UNLIMITED_TASK_SLOTS };
  const placed = fit(cap, req);
  if (placed) applyPlacement(cap, req, placed.gpuIds, -1);
  free.cpus = cap.cpus;
  free.memory = cap.memory;
  if (free.tasks !== undefined) free.tasks = cap.tasks;
}
