/**
 * One task attempt's cgroups, one per hierarchy: its limits, joining them, listing and killing
 * what runs inside, and removing them once the task is gone.
 */
import fs from 'node:fs';
import path from 'node:path';
import { listPids, read, removeCgroupDir, signalAll, write } from './cgroupFiles.js';
import type { Hierarchy } from './cgroupMounts.js';
import type { TaskLimits } from './limits.js';

export type ApplyLimits = (h: Hierarchy, dir: string, limits: TaskLimits) => void;

export class TaskCgroup {
  constructor(
    private readonly dirs: Map<Hierarchy, string>,
    private readonly apply: ApplyLimits,
    /** The memory controller is cgroup2's (its OOM kills are counted there). */
    private readonly v2Memory = false,
  ) {}

  /** Set (or change) the limits; allowed while processes are inside. */
  setLimits(limits: TaskLimits): void {
    for (const [h, dir] of this.dirs) this.apply(h, dir, limits);
  }

  /** Rename in every hierarchy (a spare's cgroups take the name of the task they end up running). */
  rename(name: string): void {
    for (const [h, dir] of this.dirs) {
      const to = path.join(path.dirname(dir), name);
      fs.renameSync(dir, to);
      this.dirs.set(h, to);
    }
  }

  /**
   * Move `pid` into every hierarchy (before it execs the worker, so all its children follow).
   * The first move may wait for an RCU grace period (~10 ms when no move happened lately): it
   * goes through the thread pool while the agent does other work. The others follow at once,
   * synchronously: on cgroupfs a synchronous write costs ~10 µs of CPU, an asynchronous one ~150.
   */
  async join(pid: number): Promise<void> {
    const [first, ...rest] = [...this.dirs.values()];
    if (first === undefined) return;
    await fs.promises.writeFile(path.join(first, 'cgroup.procs'), String(pid));
    for (const dir of rest) write(dir, 'cgroup.procs', String(pid));
  }

  /** Every process of the task, as the host sees them. */
  pids(): number[] {
    const dir = this.dirs.get('unified') ?? this.dirs.get('pids') ?? this.dirs.values().next().value;
    return dir ? listPids(dir) : [];
  }

  /**
   * The kernel's OOM killer killed something in this task (since the count was `since`): over its
   * own limit, or, with none or under it, when the node's tasks together reached the node's
   * (sandbox/rootMemory.ts) or the machine ran out.
   */
  oomKilled(since = 0): boolean {
    return this.oomKills() > since;
  }

  /** How many processes the OOM killer killed in this cgroup so far (v1's oom_control, or v2's memory.events). */
  oomKills(): number {
    const v1 = this.dirs.get('memory');
    const v2 = this.v2Memory ? this.dirs.get('unified') : undefined;
    const [dir, file] = v1 ? [v1, 'memory.oom_control'] : [v2, 'memory.events'];
    if (!dir) return 0;
    try {
      return Number(/^oom_kill\s+(\d+)/m.exec(read(dir, file))?.[1] ?? 0);
    } catch {
      return 0;
    }
  }

  /**
   * What the cgroups counted so far: CPU time in seconds (cgroup2's cpu.stat, which every cgroup2
   * directory has; else v1 cpuacct co-mounted with cpu) and the memory high-water mark in bytes
   * (v1 memory.max_usage_in_bytes, v2 memory.peak). Null where no hierarchy counts it.
   */
  usage(): { cpuS: number | null; peakMemory: number | null } {
    const num = (dir: string | undefined, file: string, pick: (text: string) => string | undefined): number | null => {
      if (!dir) return null;
      try {
        const v = Number(pick(read(dir, file)));
        return Number.isFinite(v) ? v : null;
      } catch {
        return null;
      }
    };
    const unified = this.dirs.get('unified');
    const usec = num(unified, 'cpu.stat', (t) => /^usage_usec\s+(\d+)/m.exec(t)?.[1]);
    const ns = usec === null ? num(this.dirs.get('cpu'), 'cpuacct.usage', (t) => t.trim()) : null;
    const memV1 = this.dirs.get('memory');
    const peak = memV1 ? num(memV1, 'memory.max_usage_in_bytes', (t) => t.trim()) : this.v2Memory ? num(unified, 'memory.peak', (t) => t.trim()) : null;
    return { cpuS: usec !== null ? usec / 1e6 : ns !== null ? ns / 1e9 : null, peakMemory: peak };
  }

  /**
   * Bytes of tmpfs and shared memory charged to this cgroup (memory.stat's `shmem`, v1 or v2):
   * pages its processes first touched in a tmpfs that outlives them, such as their job's object
   * store. They stay charged here after the processes are gone. Null where no hierarchy counts it.
   */
  sharedMemory(): number | null {
    const dir = this.dirs.get('memory') ?? (this.v2Memory ? this.dirs.get('unified') : undefined);
    if (!dir) return null;
    try {
      const v = Number(/^shmem\s+(\d+)/m.exec(read(dir, 'memory.stat'))?.[1]);
      return Number.isFinite(v) ? v : null;
    } catch {
      return null;
    }
  }

  /** Start the memory high-water mark again (a reused sandbox's next task); false where it cannot be. */
  resetPeak(): boolean {
    const memV1 = this.dirs.get('memory');
    if (!memV1) return false;
    try {
      write(memV1, 'memory.max_usage_in_bytes', '0');
      return true;
    } catch {
      return false;
    }
  }

  kill(): void {
    const unified = this.dirs.get('unified');
    if (unified) {
      try {
        write(unified, 'cgroup.kill', '1');
        return;
      } catch {
        // fall through to signalling each process
      }
    }
    signalAll(this.pids(), 'SIGKILL');
  }

  /**
   * Kill what is left and wait (a bounded time) for it to be gone. When a worker exits, its
   * sandbox's init is usually still tearing the namespaces down; cgroup2's `cgroup.events`
   * changes the moment the cgroup empties, so the wait ends then rather than at the next poll.
   */
  async drain(): Promise<void> {
    if (this.pids().length === 0) return;
    const deadline = Date.now() + 5000;
    let wake: (() => void) | null = null;
    const unified = this.dirs.get('unified');
    let watcher: fs.FSWatcher | null = null;
    try {
      if (unified) {
        watcher = fs.watch(path.join(unified, 'cgroup.events'), () => wake?.());
        watcher.on('error', () => undefined); // the wait still ends by polling
      }
    } catch {
      // polling alone, below
    }
    try {
      for (let i = 0; this.pids().length > 0 && Date.now() < deadline; i++) {
        this.kill();
        await new Promise<void>((resolve) => {
          const timer = setTimeout(done, Math.min(50, 2 ** i));
          function done(): void {
            clearTimeout(timer);
            wake = null;
            resolve();
          }
          wake = done;
        });
      }
    } finally {
      watcher?.close();
    }
  }

  /**
   * Drain, then remove the cgroups. The v1 memory cgroup goes through the thread pool: removing
   * it takes the kernel milliseconds, time in which the agent would not read the head's next
   * assignment. The others are removed synchronously (~10 µs each; ~50 through the pool).
   */
  async remove(): Promise<void> {
    await this.drain();
    await Promise.all([...this.dirs].map(([h, dir]) => removeCgroupDir(dir, h === 'memory')));
  }
}
