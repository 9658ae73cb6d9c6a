/**
 * In-job tasks' resources are scheduling hints, as in Ray: a worker launched with `cpuQuota: false`
 * gets a CPU share weighted by its request but no quota (and, in a reused cgroup, none left over).
 */
import { describe, expect, it } from 'vitest';
import { limitWrites } from '../src/agent/sandbox/cgroupLimits.js';
import { V2_CONTROLLERS } from '../src/agent/sandbox/cgroupV2.js';
import { taskLimits } from '../src/agent/sandbox/limits.js';

const scope = { mems: '0', allCpus: [0, 1], v2: new Set(V2_CONTROLLERS) };
const limits = (cpus: number, cpuQuota?: boolean) =>
  taskLimits({ resources: { cpus, gpus: 0, memory: 0, custom: {} }, cpusetCpus: null, deviceRules: null, pidsMax: 100, openFiles: 100, ownUid: false, seccomp: null, cpuQuota });

describe('CPU limits of a launch', () => {
  it.each([
    { name: 'a job task: quota of its CPUs', cpus: 0.5, cpuQuota: undefined, want: { 'cpu.shares': '512', 'cpu.cfs_period_us': '100000', 'cpu.cfs_quota_us': '50000' } },
    { name: 'an in-job worker: a weighted share, quota unlimited', cpus: 0.25, cpuQuota: false, want: { 'cpu.shares': '256', 'cpu.cfs_quota_us': '-1' } },
    { name: 'an in-job worker asking for no CPU', cpus: 0, cpuQuota: false, want: { 'cpu.shares': '2', 'cpu.cfs_quota_us': '-1' } },
  ])('$name', ({ cpus, cpuQuota, want }) => {
    const writes = Object.fromEntries(limitWrites('cpu', limits(cpus, cpuQuota), scope).map((w) => [w.file, w.value]));
    expect(writes).toEqual(want);
  });

  it.each([
    { name: 'a job task: quota of its CPUs', cpus: 0.5, cpuQuota: undefined, want: { 'cpu.weight': '50', 'cpu.max': '50000 100000' } },
    { name: 'an in-job worker: a weighted share, quota unlimited', cpus: 0.25, cpuQuota: false, want: { 'cpu.weight': '25', 'cpu.max': 'max 100000' } },
    { name: 'an in-job worker asking for no CPU', cpus: 0, cpuQuota: false, want: { 'cpu.weight': '1', 'cpu.max': 'max 100000' } },
  ])('on cgroup v2, $name', ({ cpus, cpuQuota, want }) => {
    const writes = Object.fromEntries(limitWrites('unified', limits(cpus, cpuQuota), scope).filter((w) => w.file.startsWith('cpu.')).map((w) => [w.file, w.value]));
    expect(writes).toEqual(want);
  });
});
