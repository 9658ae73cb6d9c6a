/**
 * Kernel-enforced limits for workers. Each limit is written where this machine has its
 * controller: a cgroup v1 hierarchy of its own (memory, cpu, cpuset, pids, devices), or the
 * cgroup2 hierarchy with the controller enabled for raysub's cgroups (cgroupV2.ts). A cgroup2
 * hierarchy, even one without controllers, also tracks the whole process tree and kills it at
 * once with `cgroup.kill`. Every cgroup lives under `<mount>/raysub/<agent>/<task>`: a root of
 * raysub's own, never the cgroup the agent was started in (which belongs to whoever started it).
 */
import fs from 'node:fs';
import path from 'node:path';
import { destroyTree, read, write } from './cgroupFiles.js';
import { applyLimits, type CgroupScope } from './cgroupLimits.js';
import { V1_CONTROLLERS, type CgroupMounts, type Hierarchy, type V1Controller } from './cgroupMounts.js';
import { sweepLeftovers } from './cgroupOwner.js';
import { enableV2, parseControllers, v2Wanted, type V2Controller } from './cgroupV2.js';
import { formatCpuList, parseCpuList } from './cpus.js';
import { weighRoots } from './cpuWeights.js';
import { limitRootMemory, rootMemoryLimit } from './rootMemory.js';
import type { TaskLimits } from './limits.js';
import { TaskCgroup, type ApplyLimits } from './taskCgroup.js';

/** The limits a node can hold, in the order `raysub nodes` lists them. */
export type LimitName = V1Controller;
const LIMIT_NAMES: readonly LimitName[] = ['memory', 'cpu', 'cpuset', 'pids', 'devices'];

/** The agent's own cgroup root in each hierarchy it can use. */
export class AgentCgroups {
  private constructor(
    readonly roots: ReadonlyMap<Hierarchy, string>,
    private readonly scope: CgroupScope,
  ) {}

  get unified(): boolean {
    return this.roots.has('unified');
  }

  get allCpus(): readonly number[] {
    return this.scope.allCpus;
  }

  /** Where a limit is written: its v1 hierarchy, cgroup2, or nowhere (null). */
  via(limit: LimitName): 'v1' | 'v2' | null {
    if (this.roots.has(limit)) return 'v1';
    return limit !== 'devices' && this.scope.v2.has(limit) ? 'v2' : null;
  }

  has(limit: LimitName): boolean {
    return this.via(limit) !== null;
  }

  /** The limits this node holds. */
  get limits(): LimitName[] {
    return LIMIT_NAMES.filter((l) => this.has(l));
  }

  /** The cgroup directory holding a controller's files for tasks (the cpuset root for CPU pinning). */
  rootOf(limit: LimitName): string | undefined {
    const via = this.via(limit);
    return via === 'v1' ? this.roots.get(limit) : via === 'v2' ? this.roots.get('unified') : undefined;
  }

  /** One line for the agent's sandbox description: which limits hold, and how. */
  describe(): string {
    const by = (v: 'v1' | 'v2'): LimitName[] => this.limits.filter((l) => this.via(l) === v);
    const parts = (['v1', 'v2'] as const).filter((v) => by(v).length > 0).map((v) => `${by(v).join(' ')} (cgroup ${v})`);
    return `${parts.length > 0 ? `limits: ${parts.join(', ')}` : 'no cgroup limits'}${this.unified ? '; cgroup2: tracking and kill' : ''}`;
  }

  /**
   * Create `raysub/<name>` in every hierarchy where that is possible, after removing the roots of
   * agents that are gone (`name` ends with this agent's owner tag: cgroupOwner.ts; `previous` is
   * the untagged name an earlier version of this agent used). `problems` says why a hierarchy or
   * a cgroup2 controller is unusable. `cpus` (the CPUs this agent offers) weighs its root against
   * the machine's other processes: cpuWeights.ts. `memory` (what it offers) bounds all its tasks
   * together: rootMemory.ts.
   */
  static open(mounts: CgroupMounts, name: string, previous?: string, cpus?: number, memory?: number): { cgroups: AgentCgroups | null; problems: string[] } {
    const result = AgentCgroups.openRoots(mounts, name);
    if (cpus !== undefined) for (const [h, root] of result.cgroups?.roots ?? []) result.problems.push(...weighRoots(h, root, cpus, result.cgroups?.via('cpu') === 'v2'));
    if (memory !== undefined) for (const [h, root] of result.cgroups?.roots ?? []) result.problems.push(...limitRootMemory(h, root, rootMemoryLimit(memory), result.cgroups?.via('memory') === 'v2'));
    for (const [h, root] of result.cgroups?.roots ?? []) sweepLeftovers(path.dirname(root), path.basename(root), { unified: h === 'unified', previous });
    return result;
  }

  private static openRoots(mounts: CgroupMounts, name: string): { cgroups: AgentCgroups | null; problems: string[] } {
    const problems: string[] = [];
    const roots = new Map<Hierarchy, string>();
    const all: [Hierarchy, string | undefined][] = [...V1_CONTROLLERS.map((c): [Hierarchy, string | undefined] => [c, mounts.v1[c]]), ['unified', mounts.unified ?? undefined]];
    let mems = '';
    let allCpus: number[] = [];
    let v2 = new Set<V2Controller>();
    for (const [h, mount] of all) {
      if (!mount) continue;
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
        fs.mkdirSync(root, { recursive: true });
        if (h === 'unified') {
          const enabled = enableV2(mount, [top, root], v2Wanted(parseControllers(read(mount, 'cgroup.controllers')), mounts.v1));
          problems.push(...enabled.problems);
          v2 = enabled.enabled;
          if (v2.has('cpuset')) {
            mems = read(root, 'cpuset.mems.effective').trim();
            allCpus = parseCpuList(read(root, 'cpuset.cpus.effective'));
          }
        }
        roots.set(h, root);
      } catch (err) {
        problems.push(`${h}: ${(err as Error).message}`);
      }
    }
    for (const l of ['memory', 'cpu', 'cpuset', 'pids'] as const) {
      if (!roots.has(l) && !v2.has(l)) problems.push(`no ${l} limit: no v1 ${l} hierarchy, and ${l} is not enabled on cgroup2`);
    }
    if (!roots.has('unified')) problems.push('no cgroup2 hierarchy: no cgroup.kill, tasks tracked through v1 only');
    if (roots.size === 0) return { cgroups: null, problems };
    return { cgroups: new AgentCgroups(roots, { mems, allCpus, v2 }), problems };
  }

  /** A cgroup per hierarchy for one task attempt, with its limits written before anything joins. */
  createTask(key: string, limits: TaskLimits): TaskCgroup {
    const dirs = new Map<Hierarchy, string>();
    // What this task's cgroups were given last, per hierarchy: the same limits are not written again.
    const written = new Map<Hierarchy, string>();
    const apply: ApplyLimits = (h, dir, l) => applyLimits(h, dir, l, this.scope, written);
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
    return new TaskCgroup(dirs, apply, this.via('memory') === 'v2');
  }

  private remakeRoot(h: Hierarchy, root: string): void {
    fs.mkdirSync(root, { recursive: true });
    const top = path.dirname(root);
    if (h === 'unified') {
      enableV2(path.dirname(top), [top, root], [...this.scope.v2]);
      return;
    }
    if (h !== 'cpuset') return;
    // raysub/ itself may have gone too (its last agent closed): parents first.
    for (const d of [top, root]) {
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
