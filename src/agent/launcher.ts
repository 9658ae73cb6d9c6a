/**
 * How a worker process is started. The agent asks a Launcher for a worker; the launcher decides
 * how strongly it is isolated (a plain process group here; bubblewrap and cgroups in sandbox/).
 */
import { spawn } from 'node:child_process';
import type { Readable } from 'node:stream';
import type { AttemptUsage, SandboxMode } from '../shared/protocol/index.js';
import type { TaskRequest } from '../shared/resources.js';

export interface LaunchSpec {
  /** Unique per attempt; names cgroups and scratch dirs. */
  key: string;
  /**
   * Tasks of one group (a job) may run one after another in the same sandbox, emptied between
   * them (sandboxLauncher.ts); without a group a task gets a sandbox of its own.
   */
  group?: string;
  argv: string[];
  /** The task's private working directory (writable). */
  cwd: string;
  env: Record<string, string>;
  resources: TaskRequest;
  gpuIds: number[];
  network: 'host' | 'none';
  /** Extra directories the worker may read (runtime envs, caches). */
  readOnlyPaths: string[];
  /** Files the agent keeps for the worker that count as its disk use (its output waiting for the head): diskGuard.ts. */
  alsoHolds?: string[];
  /** Directories besides its own the worker may write (its job's shared-memory object store). */
  writablePaths?: string[];
  /** The job may create user namespaces (and mounts in them): `runtime_env.sandbox.user_namespaces`. */
  userNamespaces?: boolean;
  /**
   * false: `resources.cpus` only weights the task's share of the CPUs (no quota, no pinning), as
   * Ray treats a task's CPUs: a scheduling hint (in-job workers). Default true.
   */
  cpuQuota?: boolean;
  /**
   * The worker's stderr is its stdout: one pipe, so its output arrives in the order it was written
   * (two pipes cannot be put back in order by any reader). `stderr` then stays empty.
   */
  mergeStderr?: boolean;
}

export interface WorkerExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The kernel killed it for exceeding its memory limit. */
  oom: boolean;
  /** What its cgroups counted (absent: it ran in none). */
  usage?: AttemptUsage;
  /** The agent killed it to keep the node's disk from filling (diskGuard.ts): why. */
  evicted?: string;
}

export interface WorkerHandle {
  pid: number;
  stdout: Readable;
  stderr: Readable;
  /** Resolves once the worker and everything it started are gone. */
  exited: Promise<WorkerExit>;
  /**
   * Stop: `signal` (SIGTERM unless said) to every process of the task, then wait for all of them
   * (not only the first) for `graceMs`, then SIGKILL; resolves when all are gone.
   */
  terminate(graceMs: number, signal?: StopSignal): Promise<void>;
}

/** The signals a task may be stopped with (Ray's RAY_JOB_STOP_SIGNAL allows these two). */
export type StopSignal = 'SIGTERM' | 'SIGINT';

export interface Launcher {
  readonly mode: SandboxMode;
  /** One line for `raysub nodes` and the agent's start-up log. */
  readonly detail: string;
  readonly cgroups: boolean;
  /** The cgroup limits it enforces: memory, cpu, cpuset, pids, devices (what `raysub nodes` lists). */
  readonly limits: readonly string[];
  /**
   * How many tasks it runs at once at most (a uid each where tasks get their own; the agent's
   * file descriptors otherwise): what the node can advertise. A launch past it fails with
   * NODE_AT_CAPACITY.
   */
  readonly capacity: number;
  launch(spec: LaunchSpec): Promise<WorkerHandle>;
  /**
   * Another directory in which each job has a directory of its own that its tasks read (the
   * in-job object store's): where sandboxes serve any job's tasks, they bind those per task too.
   * Called before the first task.
   */
  addJobRoot?(root: string): void;
  /** Remove what the launcher created at start-up (cgroup roots). */
  close?(): Promise<void>;
}

/** Whether any process of the process group is alive. */
export function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** How often a stop looks whether the task's processes are gone (as Ray's supervisor polls, every 0.1 s). */
const STOP_POLL_MS = 100;

/** Resolve once `done()` is true, looking every STOP_POLL_MS (a throwing check counts as done). */
export function until(done: () => boolean): Promise<void> {
  return new Promise((resolve) => {
    const look = (): void => {
      let finished: boolean;
      try {
        finished = done();
      } catch {
        finished = true;
      }
      if (finished) resolve();
      else setTimeout(look, STOP_POLL_MS);
    };
    look();
  });
}

export function killGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // the group is already gone
  }
}

/** How one kind of worker is stopped; workerHandle() does the rest. */
export interface HandleParts {
  pid: number;
  stdout: Readable;
  stderr: Readable;
  /**
   * Resolves once the worker and everything it started are gone: during a stop (after
   * `stopping()`), not before every process of the task has ended or been killed.
   */
  exited: Promise<WorkerExit>;
  /** Ask every process of the task to end with `signal`, sparing what holds the task together. */
  askToEnd(signal: StopSignal): void;
  /** End every process of the task at once (after the grace period). */
  killAll(): void;
  /** Told once, when a stop begins (before anything is signalled). */
  stopping?(): void;
}

/**
 * The one WorkerHandle implementation: terminate() asks, waits the grace period, then kills,
 * and resolves when the worker and everything it started are gone. A stop after the exit does
 * nothing. The grace timer runs inside an error boundary: a failing kill cannot end the agent.
 */
export function workerHandle(p: HandleParts): WorkerHandle {
  let done = false;
  p.exited.then(
    () => (done = true),
    () => (done = true),
  );
  return {
    pid: p.pid,
    stdout: p.stdout,
    stderr: p.stderr,
    exited: p.exited,
    async terminate(graceMs: number, signal: StopSignal = 'SIGTERM') {
      if (done) return;
      p.stopping?.();
      const timer = setTimeout(() => {
        try {
          p.killAll();
        } catch {
          // each kill already ignores processes that are gone; nothing else can be done here
        }
      }, graceMs);
      try {
        p.askToEnd(signal);
        await p.exited;
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

/**
 * Start `argv` in its own process group and supervise it: terminate() signals the group,
 * and when the leader exits any process it left behind in its group is killed too.
 */
export function spawnGroup(command: string[], opts: { cwd: string; env: Record<string, string>; mergeStderr?: boolean }): Promise<WorkerHandle> {
  const argv = opts.mergeStderr ? ['/bin/sh', '-c', 'exec 2>&1; exec "$@"', 'raysub-worker', ...command] : command;
  const [cmd, ...args] = argv;
  if (!cmd) return Promise.reject(new Error('empty command'));
  const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let stopping = false;
  const exited = new Promise<WorkerExit>((res) => {
    child.once('exit', (code, signal) => {
      const pid = child.pid;
      // During a stop the rest of its group has its grace period too (terminate() kills it after).
      void (stopping && pid !== undefined ? until(() => !groupAlive(pid)) : Promise.resolve()).then(() => {
        if (pid !== undefined) killGroup(pid, 'SIGKILL');
        res({ code, signal, oom: false });
      });
    });
  });
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('spawn', () => {
      const pid = child.pid;
      if (pid === undefined) return reject(new Error('spawn gave no pid'));
      resolve(
        workerHandle({
          pid,
          stdout: child.stdout,
          stderr: child.stderr,
          exited,
          stopping: () => (stopping = true),
          askToEnd: (signal) => killGroup(pid, signal),
          killAll: () => killGroup(pid, 'SIGKILL'),
        }),
      );
    });
  });
}

/** No isolation beyond a process group: the fallback where nothing stronger exists. */
export class ProcessLauncher implements Launcher {
  readonly mode = 'process' as const;
  readonly cgroups = false;
  readonly limits: readonly string[] = [];
  constructor(
    readonly detail = 'process group only: no filesystem isolation or resource limits',
    readonly capacity = 1024,
  ) {}

  launch(spec: LaunchSpec): Promise<WorkerHandle> {
    return spawnGroup(spec.argv, { cwd: spec.cwd, env: spec.env, mergeStderr: spec.mergeStderr });
  }
}
