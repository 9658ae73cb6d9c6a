/**
 * How much CPU time raysub's tasks get when the machine is contended. A cgroup competes with its
 * siblings by weight, and a new cgroup weighs as much as one process: left at that, every task of
 * every agent on a machine would share one process's worth of a busy machine, and a task holding
 * 2 CPUs would get a fraction of one. So `raysub/` weighs as one busy process per CPU of the
 * machine, and each agent's root as one per CPU it offers (at least one); tasks weigh their CPUs
 * within it (cgroupLimits.ts).
 */
import os from 'node:os';
import path from 'node:path';
import { write } from './cgroupFiles.js';
import type { Hierarchy } from './cgroupMounts.js';

/** cgroup v1 `cpu.shares` and cgroup2 `cpu.weight` for `cpus` CPUs' worth. */
export function cpuWeight(cpus: number, v2: boolean): number {
  const n = Math.max(1, cpus);
  return v2 ? Math.min(10_000, Math.round(n * 100)) : Math.round(n * 1024);
}

/** Weigh `raysub/` and the agent's root `root` in hierarchy `h`; problems, if any (never fatal). */
export function weighRoots(h: Hierarchy, root: string, cpus: number, cpuViaV2: boolean, machineCpus = os.availableParallelism()): string[] {
  const v2 = h === 'unified';
  if (!(h === 'cpu' || (v2 && cpuViaV2))) return [];
  const file = v2 ? 'cpu.weight' : 'cpu.shares';
  try {
    write(path.dirname(root), file, String(cpuWeight(machineCpus, v2)));
    write(root, file, String(cpuWeight(cpus, v2)));
    return [];
  } catch (err) {
    return [`${file}: raysub's tasks weigh as one process against the machine's others (${(err as Error).message})`];
  }
}
