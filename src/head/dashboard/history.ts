/**
 * The cluster over the last hour, for the dashboard's charts: jobs running and pending, jobs
 * finished (throughput) and resources in use, sampled every few seconds into a ring in memory.
 * A head restart starts a new history; nothing here is ever written to disk.
 */
import { guarded } from '../../shared/boundary.js';
import type { Logger } from '../../shared/log.js';
import { isTerminal, type ClusterSample } from '../../shared/protocol/index.js';
import { fromUnits } from '../../shared/resources.js';
import type { Store } from '../db/index.js';
import type { Engine } from '../engine.js';

export interface HistoryOptions {
  intervalMs: number;
  /** How far back the ring reaches. */
  spanMs: number;
}

export const DEFAULT_HISTORY: HistoryOptions = { intervalMs: 10_000, spanMs: 3600_000 };

export class ClusterHistory {
  private readonly samples: ClusterSample[] = [];
  private finished = 0;
  private timer: NodeJS.Timeout | null = null;
  private readonly onJob = (_id: string, status: string): void => {
    if (isTerminal(status as Parameters<typeof isTerminal>[0])) this.finished++;
  };

  constructor(
    private readonly engine: Engine,
    private readonly store: Pick<Store, 'jobs'>,
    private readonly log: Logger,
    readonly opts: HistoryOptions = DEFAULT_HISTORY,
  ) {}

  start(): void {
    if (this.timer) return;
    this.engine.on('job', this.onJob);
    this.sample();
    this.timer = setInterval(guarded(this.log, 'cluster history sample', () => this.sample()), this.opts.intervalMs);
    this.timer.unref();
  }

  shutdown(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.engine.off('job', this.onJob);
  }

  /** Record the cluster as it is now (the timer calls this; tests may too). */
  sample(now = Date.now()): ClusterSample {
    const s = this.measure(now);
    this.samples.push(s);
    const keep = Math.ceil(this.opts.spanMs / this.opts.intervalMs) + 1;
    if (this.samples.length > keep) this.samples.splice(0, this.samples.length - keep);
    return s;
  }

  /** The cluster as it is now, not recorded. */
  measure(now = Date.now()): ClusterSample {
    const counts: Record<string, number> = {};
    for (const c of this.store.jobs.countsByStatus()) counts[c.status] = c.n;
    let cpus = 0;
    let cpusUsed = 0;
    let gpus = 0;
    let gpusUsed = 0;
    let memory = 0;
    let memoryUsed = 0;
    for (const n of this.engine.view.nodeList()) {
      cpus += fromUnits(n.capacity.cpus);
      cpusUsed += fromUnits(n.capacity.cpus - n.free.cpus);
      gpus += n.capacity.gpus.length;
      for (let i = 0; i < n.capacity.gpus.length; i++) gpusUsed += fromUnits((n.capacity.gpus[i] ?? 0) - (n.free.gpus[i] ?? 0));
      memory += n.capacity.memory;
      memoryUsed += n.capacity.memory - n.free.memory;
    }
    return {
      t: now,
      running: counts.RUNNING ?? 0,
      pending: counts.PENDING ?? 0,
      finished: this.finished,
      cpus,
      cpus_used: Math.max(0, cpusUsed),
      gpus,
      gpus_used: Math.max(0, gpusUsed),
      memory,
      memory_used: Math.max(0, memoryUsed),
    };
  }

  /** Samples oldest first; `finished` counts jobs finished since the head started. */
  list(): ClusterSample[] {
    return [...this.samples];
  }
}
