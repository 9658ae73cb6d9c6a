/**
 * A task's limits as cgroup file writes, one hierarchy at a time: which file gets which value, in
 * v1's files for a v1 controller's hierarchy, in v2's for the controllers enabled on cgroup2.
 * Pure (the writes are made by applyLimits), so what each hierarchy receives can be checked
 * against any directory tree.
 */
import { write } from './cgroupFiles.js';
import type { Hierarchy } from './cgroupMounts.js';
import type { V2Controller } from './cgroupV2.js';
import { formatCpuList } from './cpus.js';
import type { TaskLimits } from './limits.js';

export interface CgroupWrite {
  file: string;
  value: string;
  /** A file some kernels lack (swap accounting off): its absence is not an error. */
  optional?: boolean;
}

/** What the agent's cgroup root allows every task: its memory nodes and CPUs, and the controllers on cgroup2. */
export interface CgroupScope {
  mems: string;
  allCpus: readonly number[];
  v2: ReadonlySet<V2Controller>;
}

const CFS_PERIOD_US = 100_000;

export function limitWrites(h: Hierarchy, limits: TaskLimits, scope: CgroupScope): CgroupWrite[] {
  const out: CgroupWrite[] = [];
  switch (h) {
    case 'memory':
      if (limits.memoryBytes > 0) {
        out.push({ file: 'memory.limit_in_bytes', value: String(limits.memoryBytes) });
        // Without this a task on a machine with swap would page out instead of hitting its limit.
        out.push({ file: 'memory.memsw.limit_in_bytes', value: String(limits.memoryBytes), optional: true });
      }
      break;
    case 'cpu':
      out.push({ file: 'cpu.shares', value: String(Math.max(2, Math.round(limits.cpus * 1024))) });
      if (limits.cpus > 0 && limits.cpuQuota) {
        out.push({ file: 'cpu.cfs_period_us', value: String(CFS_PERIOD_US) });
        out.push({ file: 'cpu.cfs_quota_us', value: String(Math.max(1000, Math.round(limits.cpus * CFS_PERIOD_US))) });
      } else if (!limits.cpuQuota) {
        // Written, not left out: a reused cgroup must not keep the quota of the task before.
        out.push({ file: 'cpu.cfs_quota_us', value: '-1' });
      }
      break;
    case 'cpuset':
      out.push({ file: 'cpuset.mems', value: scope.mems });
      out.push({ file: 'cpuset.cpus', value: formatCpuList(limits.cpusetCpus ?? scope.allCpus) });
      break;
    case 'pids':
      out.push({ file: 'pids.max', value: String(limits.pidsMax) });
      break;
    case 'devices':
      if (limits.deviceRules) {
        out.push({ file: 'devices.deny', value: 'a' });
        for (const rule of limits.deviceRules) out.push({ file: 'devices.allow', value: rule });
      }
      break;
    case 'unified':
      out.push(...v2Writes(limits, scope));
      break;
  }
  return out;
}

/** The same limits in cgroup v2's files, for the controllers enabled there. */
function v2Writes(limits: TaskLimits, scope: CgroupScope): CgroupWrite[] {
  const out: CgroupWrite[] = [];
  if (scope.v2.has('memory') && limits.memoryBytes > 0) {
    out.push({ file: 'memory.max', value: String(limits.memoryBytes) });
    // As v1's memsw limit: swap does not dodge the limit (absent without swap accounting).
    out.push({ file: 'memory.swap.max', value: '0', optional: true });
  }
  if (scope.v2.has('cpu')) {
    // v1's shares are 1024 per CPU, v2's weights 100 (1 to 10000).
    out.push({ file: 'cpu.weight', value: String(Math.min(10_000, Math.max(1, Math.round(limits.cpus * 100)))) });
    if (limits.cpus > 0 && limits.cpuQuota) out.push({ file: 'cpu.max', value: `${Math.max(1000, Math.round(limits.cpus * CFS_PERIOD_US))} ${CFS_PERIOD_US}` });
    // As v1's -1: written, so a reused cgroup keeps no quota of the task before.
    else if (!limits.cpuQuota) out.push({ file: 'cpu.max', value: `max ${CFS_PERIOD_US}` });
  }
  // Empty cpuset files inherit the parent's: only a pin, or its end, is written.
  if (scope.v2.has('cpuset')) out.push({ file: 'cpuset.cpus', value: limits.cpusetCpus ? formatCpuList(limits.cpusetCpus) : '\n' });
  if (scope.v2.has('pids')) out.push({ file: 'pids.max', value: String(limits.pidsMax) });
  return out;
}

/**
 * Write `limits` into the cgroup `dir` of hierarchy `h`. `last`: what was written into this
 * task's cgroups before (updated here) — a hierarchy whose writes are all the same as last time
 * is not written again (a served sandbox's next task with the same request: 8 writes of device
 * rules alone), except its cpuset files, which the kernel empties of CPUs that went offline.
 */
export function applyLimits(h: Hierarchy, dir: string, limits: TaskLimits, scope: CgroupScope, last?: Map<Hierarchy, string>): void {
  const writes = limitWrites(h, limits, scope);
  const all = JSON.stringify(writes);
  const same = last?.get(h) === all;
  // Written again in full after a write that failed.
  last?.delete(h);
  for (const w of writes) {
    if (same && !w.file.startsWith('cpuset.')) continue;
    try {
      write(dir, w.file, w.value);
    } catch (err) {
      if (!w.optional) throw err;
    }
  }
  last?.set(h, all);
}
