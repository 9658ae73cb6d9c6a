/**
 * Every limit of one task in one record, computed once per launch (taskLimits) and rendered by
 * each start mechanism: cgroup files (cgroupLimits.ts), raysub-init's start file (init.ts), and
 * the shell lines of the start script and the process gate (shellLimitLines); the seccomp filter
 * by raysub-init or bwrap's --seccomp. A new resource limit is one entry of RLIMITS; no start
 * mechanism lists limits of its own.
 */
import type { TaskRequest } from '../../shared/resources.js';

export type RlimitName = 'nofile' | 'nproc';

/**
 * Resource limits set right before the worker runs (setrlimit). `resource` is Linux's number
 * (the generic ABI: x86-64 and arm64), which raysub-init passes to setrlimit as it is.
 */
export const RLIMITS: Readonly<Record<RlimitName, { resource: number; what: string; ulimit: string }>> = {
  nofile: { resource: 7, what: 'open-file', ulimit: 'ulimit -n N' },
  // dash calls RLIMIT_NPROC -p, bash and others -u.
  nproc: { resource: 6, what: 'process', ulimit: '{ ulimit -p N 2>/dev/null || ulimit -u N; }' },
};

export interface Rlimit {
  name: RlimitName;
  value: number;
}

export interface TaskLimits {
  /** Bytes; 0 leaves memory unlimited. */
  memoryBytes: number;
  /** CPU quota in CPUs; 0 sets no quota (the task only gets a small share). */
  cpus: number;
  /** false: `cpus` only weights the share, with no quota (quota left unlimited). */
  cpuQuota: boolean;
  /** CPUs to pin to; null: every CPU the agent may use. */
  cpusetCpus: readonly number[] | null;
  pidsMax: number;
  /** Device allow rules (v1 devices syntax) after denying everything; null leaves devices alone. */
  deviceRules: readonly string[] | null;
  rlimits: readonly Rlimit[];
  /** The seccomp filter (seccomp.ts) as a struct sock_filter array; null: none. */
  seccomp: Buffer | null;
}

export interface LimitInputs {
  resources: TaskRequest;
  /** The CPUs reserved for the task (cpus.ts), or null. */
  cpusetCpus: readonly number[] | null;
  deviceRules: readonly string[] | null;
  pidsMax: number;
  openFiles: number;
  /** RLIMIT_NPROC counts a uid's processes: it is a per-task limit only for a task with a uid of its own. */
  ownUid: boolean;
  seccomp: Buffer | null;
  cpuQuota?: boolean;
}

export function taskLimits(o: LimitInputs): TaskLimits {
  const rlimits: Rlimit[] = [{ name: 'nofile', value: o.openFiles }];
  if (o.ownUid) rlimits.push({ name: 'nproc', value: o.pidsMax });
  return {
    memoryBytes: o.resources.memory,
    cpus: o.resources.cpus,
    cpuQuota: o.cpuQuota !== false,
    cpusetCpus: o.cpusetCpus,
    pidsMax: o.pidsMax,
    deviceRules: o.deviceRules,
    rlimits,
    seccomp: o.seccomp,
  };
}

/** A spare gate's cgroup limits until its task comes: none but the process cap and the base devices. */
export function spareLimits(pidsMax: number, deviceRules: readonly string[]): TaskLimits {
  return { memoryBytes: 0, cpus: 0, cpuQuota: true, cpusetCpus: null, pidsMax, deviceRules, rlimits: [], seccomp: null };
}

/** The resource limits as POSIX shell lines, each failing the start with exit 125 and a message. */
export function shellLimitLines(rlimits: readonly Rlimit[]): string[] {
  return rlimits.map(({ name, value }) => {
    const r = RLIMITS[name];
    return `${r.ulimit.replaceAll('N', String(Math.floor(value)))} || { echo "raysub: cannot set the ${r.what} limit" >&2; exit 125; }`;
  });
}
