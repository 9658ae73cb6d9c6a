/**
 * What the machine offers, looked at once when the agent starts: executables on PATH, cgroup
 * hierarchies, limits, file descriptors a worker would inherit.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { AgentOptions } from '../../shared/config.js';
import { findCgroupMounts } from './cgroupMounts.js';
import { ownerTag } from './cgroupOwner.js';
import { AgentCgroups } from './cgroups.js';
import { CpuPinner, readCoreIds, siblingPinnedCpus } from './cpus.js';
import { seccompArch } from './seccomp.js';
import type { BaseSettings } from './settings.js';
import { openStateDir } from './stateDir.js';
import { injobDirOf, tasksDirOf } from '../workspace.js';

export function findExecutable(name: string, pathVar: string | undefined): string | null {
  for (const dir of (pathVar ?? '').split(':')) {
    if (!dir.startsWith('/')) continue;
    const p = path.join(dir, name);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      if (fs.statSync(p).isFile()) return fs.realpathSync(p);
    } catch {
      // not here
    }
  }
  return null;
}

/** The hard RLIMIT_NOFILE the agent runs with: a worker cannot be given more. */
function hardOpenFileLimit(): number {
  try {
    const line = fs.readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith('Max open files'));
    const hard = line?.trim().split(/\s+/)[4];
    return hard === undefined || hard === 'unlimited' ? Infinity : Number(hard);
  } catch {
    return Infinity;
  }
}

/** Descriptors the agent holds for one running task at most: output pipes, gate, ready and control fds, FIFOs, its job's socket. */
const FDS_PER_TASK = 8;
const MAX_TASKS = 65_536;

/** How many tasks at once the agent's own file-descriptor limit allows. */
export function fdTaskCapacity(): number {
  return Math.max(1, Math.min(MAX_TASKS, Math.floor(hardOpenFileLimit() / FDS_PER_TASK)));
}

/** File descriptors above stderr that are not close-on-exec: every worker inherits them. */
export function inheritedFds(): number[] {
  const out: number[] = [];
  try {
    for (const name of fs.readdirSync('/proc/self/fd')) {
      const fd = Number(name);
      if (fd < 3) continue;
      const flags = /flags:\s+([0-7]+)/.exec(fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))?.[1];
      if (flags !== undefined && (parseInt(flags, 8) & 0o2000000) === 0) out.push(fd);
    }
  } catch {
    // no /proc: nothing to report
  }
  return out;
}

export interface OpenedCgroups {
  cgroups: AgentCgroups | null;
  problems: string[];
  settings: BaseSettings;
}

type Opts = Pick<AgentOptions, 'workDir' | 'nodeName' | 'taskPidsMax' | 'taskOpenFiles'> & Partial<Pick<AgentOptions, 'sandboxReuse' | 'sandboxSeccomp' | 'numCpus' | 'memory'>>;

/**
 * The agent's cgroup root and the settings every launcher shares. The root is named after the node
 * and its work dir, and the agent process that owns it (cgroupOwner.ts): an agent that starts
 * removes the roots of agents that are gone, its own previous run's included.
 */
export function openCgroups(opts: Opts): OpenedCgroups {
  const stateDir = openStateDir(opts.workDir);
  const base = `${opts.nodeName.replace(/[^A-Za-z0-9_.-]/g, '_')}-${crypto.createHash('sha256').update(opts.workDir).digest('hex').slice(0, 8)}`;
  const owner = ownerTag();
  const name = owner ? `${base}@${owner}` : base;
  let mountinfo = '';
  try {
    mountinfo = fs.readFileSync('/proc/self/mountinfo', 'utf8');
  } catch {
    // not Linux, or no /proc
  }
  const { cgroups, problems } = AgentCgroups.open(findCgroupMounts(mountinfo), name, base, opts.numCpus, opts.memory);
  const arch = seccompArch();
  let pinner: CpuPinner | null = null;
  const cpusetRoot = cgroups?.rootOf('cpuset');
  if (cgroups && cpusetRoot && cgroups.allCpus.length > 0) {
    const all = cgroups.allCpus;
    pinner = new CpuPinner(all, readCoreIds(all, '/sys/devices/system/cpu'), () => siblingPinnedCpus(cpusetRoot, all));
  }
  return {
    cgroups,
    problems,
    settings: {
      cgroups,
      pinner,
      self: { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 },
      stateDir,
      envBinary: null,
      pidsMax: opts.taskPidsMax,
      openFiles: Math.min(opts.taskOpenFiles, hardOpenFileLimit()),
      maxTasks: fdTaskCapacity(),
      devDir: '/dev',
      reuse: opts.sandboxReuse === false ? null : { tasksRoot: tasksDirOf(opts.workDir), injobRoot: injobDirOf(opts.workDir) },
      seccomp: arch ? { arch, denyList: opts.sandboxSeccomp !== false } : null,
    },
  };
}
