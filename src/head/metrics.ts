import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { fromUnits } from '../shared/resources.js';
import type { Store } from './db/index.js';
import type { Engine } from './engine.js';
import type { LogFollowers } from './logFollower.js';
import type { NodeView } from './state.js';

/** Prometheus metrics for the head, computed from live state when scraped. */
export class HeadMetrics {
  readonly registry = new Registry();
  private readonly schedulingLatency: Histogram;

  constructor(engine: Engine, store: Store, followers: LogFollowers) {
    const registry = this.registry;
    collectDefaultMetrics({ register: registry, prefix: 'raysub_head_' });
    new Gauge({
      name: 'raysub_jobs',
      help: 'Jobs by status',
      labelNames: ['status'],
      registers: [registry],
      collect() {
        this.reset();
        for (const s of ['PENDING', 'RUNNING', 'SUCCEEDED', 'FAILED', 'STOPPED']) this.set({ status: s }, 0);
        for (const c of store.jobs.countsByStatus()) this.set({ status: c.status }, c.n);
      },
    });
    new Gauge({
      name: 'raysub_queue_length',
      help: 'Tasks waiting to be placed',
      registers: [registry],
      collect() {
        this.set(engine.view.pendingCount);
      },
    });
    const nodeGauge = (name: string, help: string, pick: (n: NodeView) => number) =>
      new Gauge({
        name,
        help,
        labelNames: ['node'],
        registers: [registry],
        collect() {
          this.reset();
          for (const n of engine.view.nodeList()) this.set({ node: n.name }, pick(n));
        },
      });
    nodeGauge('raysub_node_cpus_total', 'CPUs a node offers', (n) => fromUnits(n.capacity.cpus));
    nodeGauge('raysub_node_cpus_free', 'CPUs free on a node', (n) => fromUnits(n.free.cpus));
    nodeGauge('raysub_node_gpus_total', 'GPUs a node offers', (n) => n.capacity.gpus.length);
    nodeGauge('raysub_node_gpus_free', 'GPU capacity free on a node', (n) => fromUnits(n.free.gpus.reduce((a, b) => a + b, 0)));
    nodeGauge('raysub_node_memory_bytes_total', 'Memory a node offers', (n) => n.capacity.memory);
    nodeGauge('raysub_node_memory_bytes_free', 'Memory free on a node', (n) => n.free.memory);
    nodeGauge('raysub_node_running_tasks', 'Tasks assigned to or running on a node', (n) => n.running.size);
    new Gauge({
      name: 'raysub_nodes_alive',
      help: 'Nodes holding a lease',
      registers: [registry],
      collect() {
        this.set(engine.view.nodeCount);
      },
    });
    new Gauge({
      name: 'raysub_log_followers',
      help: 'Open log streams and WebSocket tails',
      registers: [registry],
      collect() {
        this.set(followers.active);
      },
    });
    this.schedulingLatency = new Histogram({
      name: 'raysub_scheduling_latency_seconds',
      help: 'Time from a task becoming eligible to its placement on a node',
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120, 600],
      registers: [registry],
    });
    engine.on('placed', (ms) => this.schedulingLatency.observe(ms / 1000));
    const cpuSeconds = new Counter({ name: 'raysub_task_cpu_seconds_total', help: 'CPU-seconds of task attempts that ended, as their cgroups counted them', registers: [registry] });
    const uncounted = new Counter({ name: 'raysub_task_attempts_uncounted_total', help: 'Task attempts that ended on a node whose cgroups do not count CPU time', registers: [registry] });
    const peakMemory = new Histogram({
      name: 'raysub_task_peak_memory_bytes',
      help: 'Peak memory of task attempts that ended, as their cgroups counted it',
      buckets: [16, 64, 256, 1024, 4096, 16_384, 65_536].map((mib) => mib * 1024 * 1024),
      registers: [registry],
    });
    engine.on('attemptEnded', (u) => {
      if (u.cpu_s === null) uncounted.inc();
      else cpuSeconds.inc(u.cpu_s);
      if (u.peak_memory !== null) peakMemory.observe(u.peak_memory);
    });
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  render(): Promise<string> {
    return this.registry.metrics();
  }
}
