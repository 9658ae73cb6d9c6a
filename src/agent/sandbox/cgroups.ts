/**
 * Kernel-enforced limits for workers. cgroup v1 controllers (memory, cpu, cpuset, pids, devices)
 * carry the limits; a cgroup2 hierarchy, even one without controllers, tracks the whole process
 * tree and kills it at once with `cgroup.kill`. Every cgroup lives under
 * `<mount>/raysub/<agent>/<task>`: a root of raysub's own, never the cgroup the agent was started
 * in (which belongs to whoever started it).
 */
import fs from 'node:fs';
import path from 'node:path';
import { destroyTree, read, sweepIdle, write } from './cgroupFiles.js';
import { applyLimits, type CgroupScope } from './cgroupLimits.js';
import { V1_CONTROLLERS, type CgroupMounts, type Hierarchy, type V1Controller } from './cgroupMounts.js';
import { formatCpuList, parseCpuList } from './cpus.js';
import type { TaskLimits } from './limits.js';
import { TaskCgroup, type ApplyLimits } from './taskCgroup.js';

/** The agent's own cgroup root in each hierarchy it can use. */
export class AgentCgroups {
  private constructor(
    readonly roots: ReadonlyMap<Hierarchy, string>,
    private readonly scope: CgroupScope,
  ) {}

  get controllers(): V1Controller[] {
    return V1_CONTROLLERS.filter((c) => this.roots.has(c));
  }

  get unified(): boolean {
    return this.roots.has('unified');
  }

  get allCpus(): readonly number[] {
    return this.scope.allCpus;
  }

  has(c: V1Controller): boolean {
    return this.roots.has(c);
  }

  /**
   * Create `raysub/<name>` in every hierarchy where that is possible, after removing what a
   * previous run of the same agent left behind. `problems` says why a hierarchy is unusable.
   */
  static open(mounts: CgroupMounts, name: string): { cgroups: AgentCgroups | null; problems: string[] } {
    const result = AgentCgroups.openRoots(mounts, name);
    // Roots with no process left anywhere below them are garbage (an agent that was SIGKILLed, or
    // an idle one, which recreates its root when it next needs it): any agent may collect them.
    for (const root of result.cgroups?.roots.values() ?? []) sweepIdle(path.dirname(root), path.basename(root));
    return result;
  }

  private static openRoots(mounts: CgroupMounts, name: string): { cgroups: AgentCgroups | null; problems: string[] } {
    const problems: string[] = [];
    const roots = new Map<Hierarchy, string>();
    const all: [Hierarchy, string | undefined][] = [...V1_CONTROLLERS.map((c): [Hierarchy, string | undefined] => [c, mounts.v1[c]]), ['unified', mounts.unified ?? undefined]];
    let mems = '';
    let allCpus: number[] = [];
    for (const [h, mount] of all) {
      if (!mount) {
        if (h !== 'devices') problems.push(`no ${h === 'unified' ? 'cgroup2' : h} hierarchy`);
        continue;
      }
      const top = path.join(mount, 'raysub');
      const root = path.join(top, name);
      try {
        fs.mkdirSync(top, { recursive: true });
        if (h === 'cpuset') {
          // A cpuset cgroup takes no process until its CPUs and memory nodes are set.
          mems = read(mount, 'cpuset.mems').trim();
          const cpus = read(mount, 'cpuset.effective_cpus').trim() || read(mount, 'cpuset.cpus').trim();
          for (const d of [top, root]) {
            fs.mkdirSync(d, { recursive: true });
            if (read(d, 'cpuset.cpus').trim() === '') write(d, 'cpuset.cpus', cpus);
            if (read(d, 'cpuset.mems').trim() === '') write(d, 'cpuset.mems', mems);
          }
          allCpus = parseCpuList(read(root, 'cpuset.cpus'));
        }
        if (fs.existsSync(root)) {
          for (const e of fs.readdirSync(root, { withFileTypes: true })) if (e.isDirectory()) destroyTree(path.join(root, e.name), h === 'unified');
        }
        fs.mkdirSync(root, { recursive: true });
        roots.set(h, root);
      } catch (err) {
        problems.push(`${h}: ${(err as Error).message}`);
      }
    }
    if (roots.size === 0) return { cgroups: null, problems };
    return { cgroups: new AgentCgroups(roots, { mems, allCpus }), problems };
  }

  /** A cgroup per hierarchy for one task attempt, with its limits written before anything joins. */
  createTask(key: string, limits: TaskLimits): TaskCgroup {
    const dirs = new Map<Hierarchy, string>();
    const apply: ApplyLimits = (h, dir, l) => applyLimits(h, dir, l, this.scope);
    try {
      for (const [h, root] of this.roots) {
        const dir = path.join(root, key);
        try {
          fs.mkdirSync(dir);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
          // Another agent collected our idle root: make it again.
          this.remakeRoot(h, root);
          fs.mkdirSync(dir);
        }
        dirs.set(h, dir);
        apply(h, dir, limits);
      }
    } catch (err) {
      for (const dir of dirs.values()) {
        try {
          fs.rmdirSync(dir);
        } catch {
          // nothing joined it yet; a leftover is removed at the next start
        }
      }
      throw err;
    }
    return new TaskCgroup(dirs, limits.memoryBytes > 0, apply);
  }

  private remakeRoot(h: Hierarchy, root: string): void {
    fs.mkdirSync(root, { recursive: true });
    if (h !== 'cpuset') return;
    // raysub/ itself may have gone too (its last agent closed): parents first.
    for (const d of [path.dirname(root), root]) {
      if (read(d, 'cpuset.cpus').trim() === '') write(d, 'cpuset.cpus', formatCpuList(this.scope.allCpus));
      if (read(d, 'cpuset.mems').trim() === '') write(d, 'cpuset.mems', this.scope.mems);
    }
  }

  /** Remove the agent's roots (its tasks' cgroups are already gone). */
  close(): void {
    for (const [h, root] of this.roots) {
      destroyTree(root, h === 'unified');
      try {
        fs.rmdirSync(path.dirname(root));
      } catch {
        // other agents on this machine still use raysub/
      }
    }
  }
}
