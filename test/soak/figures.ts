/**
 * The soak's figures over time: jobs, kills and restarts, the queue, the RSS of the head and of
 * each agent, disk use of the head's data dir and of each node's work dir. Sampled every few
 * seconds while the soak runs; a sample also looks for a node the head calls LOST while its
 * process has been alive for longer than a lease (a violation the checks report).
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import { promisify } from 'node:util';
import type { SoakCluster } from './cluster.js';

const run = promisify(execFile);

export interface Sample {
  t: number;
  pendingJobs: number;
  runningJobs: number;
  runningTasks: number;
  rssMiB: Record<string, number>;
  diskMiB: Record<string, number>;
}

export function rssMiB(pid: number): number {
  try {
    const kb = Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
    return Math.round((kb / 1024) * 10) / 10;
  } catch {
    return 0;
  }
}

/** Bytes under `dir` as du counts them (0 when it is gone). */
export async function duBytes(dir: string): Promise<number> {
  try {
    const { stdout } = await run('du', ['-sb', dir], { maxBuffer: 1 << 20 });
    return Number(stdout.split('\t')[0]);
  } catch (err) {
    // du exits 1 when files vanish while it walks (retention at work); its total still stands.
    const total = Number(String((err as { stdout?: string }).stdout ?? '').split('\t')[0]);
    return Number.isFinite(total) ? total : 0;
  }
}

export class Figures {
  readonly samples: Sample[] = [];
  /** "node X LOST while its process was alive" findings. */
  readonly lostWhileAlive: string[] = [];
  jobs = { submitted: 0, finished: 0, tasks: 0, byStatus: {} as Record<string, number> };
  private timer: NodeJS.Timeout | null = null;
  private busy = false;
  /** When each live process was first seen, by pid. */
  private readonly firstSeen = new Map<number, number>();

  constructor(
    private readonly c: SoakCluster,
    private readonly leaseMs: number,
    private readonly everyMs = 3000,
  ) {}

  start(): void {
    this.timer = setInterval(() => {
      if (this.busy) return;
      this.busy = true;
      this.sample()
        .catch(() => undefined)
        .finally(() => (this.busy = false));
    }, this.everyMs);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  private async sample(): Promise<void> {
    const now = Date.now();
    const pids = this.c.pids();
    for (const pid of pids.values()) if (!this.firstSeen.has(pid)) this.firstSeen.set(pid, now);
    const rss: Record<string, number> = {};
    for (const [node, pid] of pids) rss[node] = rssMiB(pid);
    const disk: Record<string, number> = {};
    // du over many small files costs CPU: every fifth sample.
    if (this.samples.length % 5 === 0) {
      disk['head-data'] = Math.round((await duBytes(this.c.head.dataDir)) / 2 ** 20);
      for (const [node, dir] of this.c.workDirs()) if (dir.startsWith(this.c.head.dataDir) === false) disk[node] = Math.round((await duBytes(dir)) / 2 ** 20);
    }
    const [counts, nodes] = await Promise.all([this.c.client.jobCounts(), this.c.client.nodes()]);
    for (const n of nodes) {
      const pid = pids.get(n.node_name);
      if (n.state === 'LOST' && pid !== undefined && now - (this.firstSeen.get(pid) ?? now) > this.leaseMs + 10_000) {
        this.lostWhileAlive.push(`${new Date(now).toISOString()} node ${n.node_name} LOST while its process ${pid} has been alive since ${new Date(this.firstSeen.get(pid) ?? now).toISOString()}`);
      }
    }
    this.samples.push({
      t: now,
      pendingJobs: counts.counts.PENDING ?? 0,
      runningJobs: counts.counts.RUNNING ?? 0,
      runningTasks: nodes.reduce((s, n) => s + n.running_tasks, 0),
      rssMiB: rss,
      diskMiB: disk,
    });
  }

  /** The summary printed at the end and written to the report. */
  summary(startedAt: number): Record<string, unknown> {
    const s = this.samples;
    const series = (pick: (x: Sample) => number | undefined) => s.map(pick).filter((v): v is number => v !== undefined && v > 0);
    const stats = (vals: number[]) => (vals.length ? { first: vals[0], max: Math.max(...vals), last: vals[vals.length - 1] } : null);
    const names = new Set(s.flatMap((x) => [...Object.keys(x.rssMiB), ...Object.keys(x.diskMiB)]));
    const rss: Record<string, unknown> = {};
    const disk: Record<string, unknown> = {};
    for (const n of names) {
      const r = stats(series((x) => x.rssMiB[n]));
      if (r) rss[n] = r;
      const d = stats(series((x) => x.diskMiB[n]));
      if (d) disk[n] = d;
    }
    // Eleven evenly spaced points of memory and the queue over the run, for the record.
    const timeline = [0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1]
      .map((f) => s[Math.min(s.length - 1, Math.floor(f * (s.length - 1)))])
      .filter((x): x is Sample => x !== undefined)
      .map((x) => ({ min: Math.round((x.t - startedAt) / 6000) / 10, rssMiB: x.rssMiB, pendingJobs: x.pendingJobs, runningTasks: x.runningTasks }));
    const diskTimeline = s.filter((x) => Object.keys(x.diskMiB).length > 0).map((x) => ({ min: Math.round((x.t - startedAt) / 6000) / 10, ...x.diskMiB }));
    const count = (what: string) => this.c.events.filter((e) => e.what === what).length;
    return {
      minutes: Math.round((Date.now() - startedAt) / 6000) / 10,
      jobs: this.jobs,
      kills: { agents: count('agent-kill'), head: count('head-kill') },
      restarts: { agents: count('agent-restart'), head: count('head-restart') },
      duplicateAgentsRefused: count('duplicate-refused'),
      largestQueue: { pendingJobs: Math.max(0, ...s.map((x) => x.pendingJobs)), runningTasks: Math.max(0, ...s.map((x) => x.runningTasks)) },
      rssMiB: rss,
      diskMiB: disk,
      timeline,
      diskTimeline: diskTimeline.filter((_, i) => i % Math.max(1, Math.ceil(diskTimeline.length / 12)) === 0),
    };
  }
}
