/**
 * cgroup v2 controllers for raysub's cgroups. On a host that boots cgroup v2 only (most systemd
 * distributions), memory, cpu, cpuset and pids live in the one unified hierarchy; a controller
 * limits a cgroup only once every ancestor lists it in `cgroup.subtree_control`. A controller
 * still bound to a v1 hierarchy (as on machines that mount v1 controllers) is not available on
 * v2 at the same time: the limit is then written on v1.
 */
import path from 'node:path';
import { read, write } from './cgroupFiles.js';
import type { CgroupMounts } from './cgroupMounts.js';

export type V2Controller = 'memory' | 'cpu' | 'cpuset' | 'pids';
export const V2_CONTROLLERS: readonly V2Controller[] = ['memory', 'cpu', 'cpuset', 'pids'];

/** The controller names in a `cgroup.controllers` or `cgroup.subtree_control` file. */
export function parseControllers(text: string): Set<string> {
  return new Set(text.split(/\s+/).filter(Boolean));
}

/**
 * The controllers raysub wants on cgroup2: those its root offers (`available`, the mount's
 * `cgroup.controllers`) and no v1 hierarchy holds.
 */
export function v2Wanted(available: ReadonlySet<string>, v1: CgroupMounts['v1']): V2Controller[] {
  return V2_CONTROLLERS.filter((c) => available.has(c) && v1[c] === undefined);
}

/**
 * Enable `wanted` for the children of each of `dirs` (the mount, raysub/, the agent's root: the
 * path down to the task cgroups), one controller at a time; returns those the agent's root
 * passes on to its tasks, and why the others are not.
 */
export function enableV2(mount: string, dirs: readonly string[], wanted: readonly V2Controller[]): { enabled: Set<V2Controller>; problems: string[] } {
  const problems: string[] = [];
  const available = parseControllers(safeRead(mount, 'cgroup.controllers'));
  for (const c of V2_CONTROLLERS) {
    if (!wanted.includes(c)) continue;
    if (!available.has(c)) {
      problems.push(`cgroup2: no ${c} controller offered at ${mount}`);
      continue;
    }
    for (const dir of [mount, ...dirs]) {
      if (parseControllers(safeRead(dir, 'cgroup.subtree_control')).has(c)) continue;
      try {
        write(dir, 'cgroup.subtree_control', `+${c}`);
      } catch (err) {
        problems.push(`cgroup2: cannot enable ${c} in ${path.relative(mount, dir) || '/'}: ${(err as Error).message}`);
        break;
      }
    }
  }
  const last = dirs.at(-1) ?? mount;
  const passed = parseControllers(safeRead(last, 'cgroup.subtree_control'));
  return { enabled: new Set(wanted.filter((c) => passed.has(c))), problems };
}

function safeRead(dir: string, file: string): string {
  try {
    return read(dir, file);
  } catch {
    return '';
  }
}
