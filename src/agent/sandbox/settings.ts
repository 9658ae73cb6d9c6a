/**
 * What a sandbox launcher works with, settled once when the agent starts (probe.ts, probeBwrap.ts):
 * the mechanisms this machine offers and the operator's choices. Types only.
 */
import type { AgentOptions } from '../../shared/config.js';
import type { AgentCgroups } from './cgroups.js';
import type { CpuPinner } from './cpus.js';
import type { UidPool } from './identity.js';
import type { StaticLayout } from './layout.js';
import type { SeccompSettings } from './seccomp.js';

/** The agent's options the sandbox reads. */
export type SandboxOptions = Pick<AgentOptions, 'sandbox' | 'workDir' | 'hiddenPaths' | 'nodeName' | 'sandboxInterpreters' | 'sandboxBinds' | 'taskPidsMax' | 'taskOpenFiles' | 'sandboxReuse' | 'sandboxSeccomp'> & Partial<Pick<AgentOptions, 'numCpus' | 'memory'>>;

export interface BwrapSettings {
  path: string;
  version: string;
  layout: StaticLayout;
  /** setpriv, when the agent is root and drops each task to its own uid (without raysub-init). */
  setpriv: string | null;
  /** raysub-init on the host (init.ts): settles the worker instead of setpriv and a shell script. */
  init: string | null;
  /** bwrap runs as an unprivileged user and needs a user namespace. */
  userns: boolean;
}

export interface SandboxSettings {
  bwrap: BwrapSettings | null;
  cgroups: AgentCgroups | null;
  pinner: CpuPinner | null;
  /** A uid per task: only a root agent in bwrap mode has one. */
  uids: UidPool | null;
  /** The agent's own uid and gid, used when tasks do not get their own. */
  self: { uid: number; gid: number };
  /** Per-task files (passwd, start script), private to the agent: on a tmpfs where it may be (stateDir.ts). */
  stateDir: string;
  envBinary: string | null;
  pidsMax: number;
  openFiles: number;
  /** The seccomp filter tasks get in bwrap (null: none on this architecture). */
  seccomp: SeccompSettings | null;
  /** Tasks at once the agent's own file-descriptor limit allows (fdTaskCapacity). */
  maxTasks: number;
  devDir: string;
  /**
   * Run consecutive tasks in one served sandbox (needs raysub-init and a uid per task): the
   * workspace's tasks directory, in which each job's tasks have a directory of the job's (that a
   * served sandbox binds), and the in-job directory, in which each job has a directory of its own
   * (its tasks' read-only in-job paths). A sandbox serving any job binds each task's directories
   * from these two. Null: never.
   */
  reuse: { tasksRoot: string; injobRoot?: string | null } | null;
}

/** What every launcher of the agent shares, before bubblewrap is probed. */
export type BaseSettings = Omit<SandboxSettings, 'bwrap' | 'uids'>;
