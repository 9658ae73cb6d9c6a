/**
 * Launches workers in bubblewrap (when configured) inside cgroups (when available).
 *
 * One worker: reserve a uid and CPUs, create its cgroups, start bwrap at its gate (gate.ts) and
 * move it into the cgroups, write the task's files, open the gate. Moving a process into a cgroup
 * can wait for an RCU grace period (~10 ms) when no cgroup move happened lately, and forking the
 * agent costs a few more; so in bwrap mode one gate is kept started ahead — a spare, already in
 * cgroups of its own — and a task that arrives takes it, renames its cgroups and sets its limits.
 *
 * Served sandboxes (raysub-init --serve; where raysub-init runs and each task has its own uid):
 * when a task of a job ends normally, its sandbox — namespaces, mounts, uid, cgroups — waits a
 * moment for the job's next task on this node, which then starts with a request on a pipe
 * instead of a new bubblewrap. Between two tasks raysub-init kills everything the first left
 * running, empties /tmp and /dev/shm and removes IPC objects and message queues; the task's
 * directory is new; limits are set again. A sandbox whose task was stopped, timed out or hit its memory
 * limit is never reused, nor one idle for IDLE_MS. docs/sandbox.md has what tasks share.
 */
import path from 'node:path';
import fs from 'node:fs';
import net from 'node:net';
import type { Readable } from 'node:stream';
import type { SandboxMode } from '../../shared/protocol/index.js';
import { killGroup, type LaunchSpec, type Launcher, type WorkerExit, type WorkerHandle } from '../launcher.js';
import { bwrapArgv, prepareBwrapTask, servedFiles, writeTaskFiles } from './bwrapTask.js';
import type { AgentCgroups, CgroupLimits, TaskCgroup } from './cgroups.js';
import type { CpuPinner } from './cpus.js';
import { startGate, type Gate, type Served } from './gate.js';
import { BASE_DEVICE_RULES, deviceRules, gpuDeviceNodes } from './gpus.js';
import type { Identity, UidPool } from './identity.js';
import { SANDBOX_BIN_DIR, type StaticLayout } from './layout.js';
import { childrenOf, descendantsOf, signal } from './processTree.js';
import { READY_FD } from './startScript.js';
import { taskEnv } from './taskEnv.js';

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
  /** Per-task files (passwd, start script), private to the agent. */
  stateDir: string;
  envBinary: string | null;
  pidsMax: number;
  openFiles: number;
  devDir: string;
  /**
   * Run a job's consecutive tasks in one served sandbox (needs raysub-init and a uid per task):
   * the workspace's tasks directory, in which each job's tasks have a directory of the job's
   * (that a served sandbox binds). Null: never.
   */
  reuse: { tasksRoot: string } | null;
}

/**
 * Names served sandboxes' directories: counted per process, not per launcher, since launchers
 * share the state dir (the start-up probe's trial launcher and the agent's own).
 */
let servedCount = 0;

/** How long a served sandbox waits for its job's next task. */
export const IDLE_MS = 2000;
/** Served sandboxes kept waiting at most (each holds a uid, cgroups and three processes). */
const MAX_IDLE = 8;

/** The gate for workers without bwrap: wait for the agent's word on fd 3, set limits, exec. */
function processGate(openFiles: number): string {
  return `IFS= read -r go <&3 || exit 125; exec 3<&-; ulimit -n ${openFiles} || exit 125; printf ok >&${READY_FD}; exec ${READY_FD}>&-; exec "$@"`;
}

interface Reservation {
  uid: number | null;
  cpus: number[] | null;
  stateDir: string | null;
  cgroup: TaskCgroup | null;
}

interface Spare {
  gate: Gate;
  uid: number | null;
  cgroup: TaskCgroup | null;
}

/** A sandbox whose raysub-init runs one task after another. */
interface ServedSandbox {
  gate: Gate;
  served: Served;
  uid: number | null;
  cgroup: TaskCgroup | null;
  /** Its host directory: passwd, group and the control directory (servedFiles). */
  dir: string;
  /** The tasks it may run next (those with its first task's reuse key); null: none. */
  key: string | null;
  /** boundIdentity() of its first task. */
  bound: string;
  idle: NodeJS.Timeout | null;
}

/** A FIFO's read end as a stream, with a write end held until the writer has it open (else: EOF at once). */
function openFifo(file: string): { stream: net.Socket; release: () => void } {
  const rd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  let wr: number | null = null;
  try {
    wr = fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
  } catch (err) {
    fs.closeSync(rd);
    throw err;
  }
  const stream = new net.Socket({ fd: rd, readable: true, writable: false });
  return {
    stream,
    release: () => {
      if (wr !== null) fs.closeSync(wr);
      wr = null;
    },
  };
}

/**
 * What a served sandbox bound for a task, as device:inode of each path ("" for one that is gone):
 * the job's directory and the read-only paths. One recreated since is not the one bound.
 */
function boundIdentity(spec: LaunchSpec): string {
  return [path.dirname(spec.cwd), ...spec.readOnlyPaths]
    .map((p) => {
      try {
        const st = fs.statSync(p);
        return `${st.dev}:${st.ino}`;
      } catch {
        return '';
      }
    })
    .join(',');
}

export class SandboxLauncher implements Launcher {
  private readonly releasing = new Set<Promise<void>>();
  private spare: Promise<Spare | null> | null = null;
  private spares = 0;
  private closed = false;
  /** Served sandboxes waiting for a task, oldest first. */
  private readonly idle: ServedSandbox[] = [];

  constructor(
    readonly mode: SandboxMode,
    readonly detail: string,
    private readonly s: SandboxSettings,
    /** Keep a spare gate started ahead (bwrap mode). */
    private readonly keepSpare = true,
  ) {}

  /** Limits are enforced (a cgroup2 without controllers only tracks and kills). */
  get cgroups(): boolean {
    return this.s.cgroups?.has('memory') ?? false;
  }

  /** Spares are served sandboxes (raysub-init --serve). */
  private get serving(): boolean {
    return this.s.reuse !== null && this.s.bwrap?.init != null && this.s.uids !== null;
  }

  /** What a served sandbox must share with a task to run it; null: the task needs one of its own. */
  private reuseKey(spec: LaunchSpec): string | null {
    const reuse = this.s.reuse;
    // The sandbox binds the group's directory: the task's must lie in it, as the workspace makes it.
    if (!this.serving || !reuse || spec.group === undefined || path.dirname(spec.cwd) !== path.join(reuse.tasksRoot, spec.group)) return null;
    // The same request too: limits a task does not set (no memory limit, no CPU quota) are not
    // written at all, so a sandbox keeps those of the task before it.
    return JSON.stringify([spec.group, spec.network, spec.gpuIds, spec.readOnlyPaths, spec.resources]);
  }

  async launch(spec: LaunchSpec): Promise<WorkerHandle> {
    const key = this.reuseKey(spec);
    const warm = key === null ? null : this.takeIdle(key, spec);
    const r: Reservation = { uid: null, cpus: null, stateDir: null, cgroup: null };
    try {
      if (warm) {
        this.reserveCpus(spec, r);
        return await this.runServed(warm, spec, r, false);
      }
      return await this.start(spec, r, key);
    } catch (err) {
      await this.release(r);
      throw err;
    }
  }

  private reserveCpus(spec: LaunchSpec, r: Reservation): void {
    if (this.s.cgroups && Number.isInteger(spec.resources.cpus)) r.cpus = this.s.pinner?.take(spec.resources.cpus) ?? null;
  }

  private limitsFor(spec: LaunchSpec, r: Reservation, gpuNodes = gpuDeviceNodes(this.s.devDir, spec.gpuIds)): CgroupLimits {
    return { memoryBytes: spec.resources.memory, cpus: spec.resources.cpus, cpusetCpus: r.cpus, pidsMax: this.s.pidsMax, deviceRules: deviceRules(gpuNodes) };
  }

  private envFor(spec: LaunchSpec): Record<string, string> {
    return taskEnv(spec, { sandboxed: this.s.bwrap !== null, user: 'raysub', binDir: SANDBOX_BIN_DIR });
  }

  private async start(spec: LaunchSpec, r: Reservation, key: string | null): Promise<WorkerHandle> {
    const { s } = this;
    const bwrap = s.bwrap;
    const gpuNodes = gpuDeviceNodes(s.devDir, spec.gpuIds);
    this.reserveCpus(spec, r);
    const limits = this.limitsFor(spec, r, gpuNodes);
    const env = this.envFor(spec);
    // A served sandbox runs a task that cannot share it (key null) once, then ends.
    const serve = bwrap !== null && this.serving;

    let gate: Gate;
    const spare = bwrap ? await this.takeSpare() : null;
    if (spare) {
      ({ gate, uid: r.uid, cgroup: r.cgroup } = spare);
      try {
        r.cgroup?.rename(spec.key);
      } catch {
        // keeps its spare's name: only cosmetic
      }
    } else {
      r.uid = bwrap ? (s.uids?.take() ?? null) : null;
      r.cgroup = s.cgroups?.createTask(spec.key, limits) ?? null;
      gate = bwrap
        ? // bwrap itself runs with an empty environment: it is privileged, and the job's variables are not for it.
          await startGate(bwrap.path, bwrapArgv(bwrap, r.uid, serve), { cwd: '/', env: {} }, r.cgroup, serve)
        : await startGate('/bin/sh', ['-c', processGate(s.openFiles), 'raysub-worker', ...spec.argv], { cwd: spec.cwd, env }, r.cgroup);
    }
    let input = 'go\n';
    try {
      if (spare) r.cgroup?.setLimits(limits);
      if (bwrap) {
        const id: Identity = { uid: r.uid ?? s.self.uid, gid: r.uid ?? s.self.gid, name: 'raysub', home: spec.cwd };
        r.stateDir = path.join(s.stateDir, serve ? `served-${++servedCount}` : spec.key);
        input = prepareBwrapTask(bwrap, s, spec, env, id, r.uid !== null, gpuNodes, r.stateDir, serve ? { bindDir: key === null ? spec.cwd : path.dirname(spec.cwd) } : null);
      }
      await gate.joined;
    } catch (err) {
      // A gate that died by itself says why on stderr; that beats the error it caused here.
      const said = await gate.discard();
      const byItself = (await gate.exit).signal !== 'SIGKILL';
      throw new Error(byItself && said ? said : `could not start the sandbox: ${(err as Error).message}`, { cause: err });
    }
    if (gate.served && r.stateDir) {
      // From here the sandbox owns the uid, cgroups and files; the task only its CPUs.
      const sb: ServedSandbox = { gate, served: gate.served, uid: r.uid, cgroup: r.cgroup, dir: r.stateDir, key, bound: boundIdentity(spec), idle: null };
      r.uid = null;
      r.cgroup = null;
      r.stateDir = null;
      try {
        await gate.open(input);
      } catch (err) {
        await this.discardServed(sb);
        throw err;
      }
      setImmediate(() => this.prestart());
      return this.runServed(sb, spec, r, true);
    }
    await gate.open(input);
    // The next spare is started once this worker is on its way, not in its path.
    setImmediate(() => this.prestart());
    return this.handle(gate, r);
  }

  /** An idle served sandbox for `key` whose bound paths are still the ones it bound, if any. */
  private takeIdle(key: string, spec: LaunchSpec): ServedSandbox | null {
    for (let i = this.idle.length - 1; i >= 0; i--) {
      const sb = this.idle[i];
      if (!sb || sb.key !== key) continue;
      this.idle.splice(i, 1);
      if (sb.idle) clearTimeout(sb.idle);
      sb.idle = null;
      const alive = sb.gate.child.exitCode === null && sb.gate.child.signalCode === null;
      if (alive && sb.bound === boundIdentity(spec)) return sb;
      void this.discardServed(sb);
    }
    return null;
  }

  /** Keep a served sandbox for its job's next task, for IDLE_MS. */
  private park(sb: ServedSandbox): void {
    if (this.closed) {
      void this.discardServed(sb);
      return;
    }
    sb.idle = setTimeout(() => {
      const i = this.idle.indexOf(sb);
      if (i >= 0) this.idle.splice(i, 1);
      void this.discardServed(sb);
    }, IDLE_MS);
    sb.idle.unref();
    this.idle.push(sb);
    while (this.idle.length > MAX_IDLE) {
      const oldest = this.idle.shift();
      if (oldest?.idle) clearTimeout(oldest.idle);
      if (oldest) void this.discardServed(oldest);
    }
  }

  /** End a served sandbox and free what it holds; returns what it said on stderr. */
  private discardServed(sb: ServedSandbox): Promise<string> {
    if (sb.idle) clearTimeout(sb.idle);
    sb.idle = null;
    const done = sb.gate.discard().then(async (said) => {
      await this.release({ uid: sb.uid, cpus: null, stateDir: sb.dir, cgroup: sb.cgroup });
      return said;
    });
    const tracked = done.then(() => undefined);
    this.releasing.add(tracked);
    void tracked.finally(() => this.releasing.delete(tracked));
    return done;
  }

  /** Run one task in a served sandbox (its first, or the next of its job). */
  private async runServed(sb: ServedSandbox, spec: LaunchSpec, r: Reservation, first: boolean): Promise<WorkerHandle> {
    const { s } = this;
    const files = servedFiles(sb.dir);
    const bwrap = s.bwrap;
    if (!bwrap) throw new Error('a served sandbox without bubblewrap');
    if (!first) {
      const id: Identity = { uid: sb.uid ?? s.self.uid, gid: sb.uid ?? s.self.gid, name: 'raysub', home: spec.cwd };
      try {
        writeTaskFiles(bwrap, s, spec, this.envFor(spec), id, sb.uid !== null, files, true);
        sb.cgroup?.setLimits(this.limitsFor(spec, r));
      } catch (err) {
        void this.discardServed(sb);
        throw err;
      }
    }
    const oomBefore = sb.cgroup?.oomKills() ?? 0;
    let out: ReturnType<typeof openFifo> | null = null;
    let err: ReturnType<typeof openFifo> | null = null;
    let said: string | null;
    try {
      out = openFifo(path.join(files.ctlDir, 'out'));
      err = openFifo(path.join(files.ctlDir, 'err'));
      sb.served.control.write('run\n');
      said = await sb.served.lines.next();
    } catch (e) {
      said = `(${(e as Error).message})`;
    } finally {
      out?.release();
      err?.release();
    }
    if (said !== 'ok' || !out || !err) {
      out?.stream.destroy();
      err?.stream.destroy();
      const why = await this.discardServed(sb);
      throw new Error(why || `the sandbox did not start the worker${said ? ` (it said "${said}")` : ''}`);
    }
    return this.servedHandle(sb, r, out.stream, err.stream, oomBefore);
  }

  private servedHandle(sb: ServedSandbox, r: Reservation, stdout: Readable, stderr: Readable, oomBefore: number): WorkerHandle {
    const { gate } = sb;
    let terminated = false;
    const exited: Promise<WorkerExit> = (async () => {
      const line = await Promise.race([sb.served.lines.next(), gate.exit.then(() => null)]);
      const m = line ? /^exit (-?\d+) (\d+)$/.exec(line) : null;
      let code: number | null;
      let sig: NodeJS.Signals | null;
      if (m) {
        // As from a sandbox of its own (bwrap's exit status): a signal shows as 128 + its number.
        const n = Number(m[2]);
        code = n > 0 ? 128 + n : Number(m[1]);
        sig = null;
      } else {
        ({ code, signal: sig } = await gate.exit);
      }
      const oom = sb.cgroup?.oomKilled(oomBefore) ?? false;
      await this.release(r);
      if (m && !terminated && !oom && sb.key !== null) this.park(sb);
      else void this.discardServed(sb);
      return { code, signal: sig, oom };
    })();
    let done = false;
    void exited.then(() => (done = true));
    // bwrap, the namespace's init and raysub-init stay out of a SIGTERM meant for the worker.
    const workers = (): number[] => {
      const outer = childrenOf(gate.pid);
      const keep = new Set([gate.pid, ...outer, ...outer.flatMap((p) => childrenOf(p))]);
      return (sb.cgroup ? sb.cgroup.pids() : descendantsOf(gate.pid)).filter((p) => !keep.has(p));
    };
    const killAll = (): void => {
      sb.cgroup?.kill();
      signal(childrenOf(gate.pid), 'SIGKILL');
    };
    return {
      pid: gate.pid,
      stdout,
      stderr,
      exited,
      async terminate(graceMs: number) {
        if (done) return;
        terminated = true;
        signal(workers(), 'SIGTERM');
        const timer = setTimeout(killAll, graceMs);
        await exited;
        clearTimeout(timer);
      },
    };
  }

  /** Start a spare gate in the background, if this launcher keeps one and has none. */
  prestart(): void {
    const bwrap = this.s.bwrap;
    if (!bwrap || !this.keepSpare || this.closed || this.spare) return;
    this.spare = (async (): Promise<Spare | null> => {
      const uid = this.s.uids?.take() ?? null;
      let cgroup: TaskCgroup | null = null;
      try {
        const neutral: CgroupLimits = { memoryBytes: 0, cpus: 0, cpusetCpus: null, pidsMax: this.s.pidsMax, deviceRules: BASE_DEVICE_RULES };
        cgroup = this.s.cgroups?.createTask(`spare-${++this.spares}`, neutral) ?? null;
        return { gate: await startGate(bwrap.path, bwrapArgv(bwrap, uid, this.serving), { cwd: '/', env: {} }, cgroup, this.serving), uid, cgroup };
      } catch {
        await this.release({ uid, cpus: null, stateDir: null, cgroup });
        return null;
      }
    })();
  }

  private async takeSpare(): Promise<Spare | null> {
    const pending = this.spare;
    this.spare = null;
    const spare = pending ? await pending : null;
    if (!spare) return null;
    // Settled before its cgroups are renamed (the move writes to their paths).
    const joined = await spare.gate.joined.then(
      () => true,
      () => false,
    );
    if (joined && spare.gate.child.exitCode === null && spare.gate.child.signalCode === null) return spare;
    await spare.gate.discard();
    await this.release({ uid: spare.uid, cpus: null, stateDir: null, cgroup: spare.cgroup });
    return null;
  }

  private handle(gate: Gate, r: Reservation): WorkerHandle {
    const { child, pid } = gate;
    const bwrapped = this.s.bwrap !== null;
    const exited: Promise<WorkerExit> = gate.exit.then(async ({ code, signal: sig }) => {
      // Whatever the worker left behind goes with it.
      if (!bwrapped) killGroup(pid, 'SIGKILL');
      await r.cgroup?.drain();
      const oom = r.cgroup?.oomKilled() ?? false;
      // Nothing of the task runs any more; removing its cgroups need not delay the exit report.
      const removal = new Promise<void>((resolve) => setImmediate(resolve)).then(() => this.release(r));
      this.releasing.add(removal);
      void removal.finally(() => this.releasing.delete(removal));
      return { code, signal: sig, oom };
    });
    let done = false;
    void exited.then(() => (done = true));
    const workers = (): number[] => {
      if (!bwrapped) return r.cgroup?.pids() ?? [];
      // Not bwrap itself: SIGTERM to it would tear the sandbox down with no grace for the worker.
      const keep = new Set([pid, ...childrenOf(pid)]);
      return (r.cgroup ? r.cgroup.pids() : descendantsOf(pid)).filter((p) => !keep.has(p));
    };
    const killAll = (): void => {
      r.cgroup?.kill();
      if (bwrapped) signal(childrenOf(pid), 'SIGKILL'); // the namespace's init: its death ends every process inside
      else killGroup(pid, 'SIGKILL');
    };
    return {
      pid,
      stdout: child.stdout as Readable,
      stderr: child.stderr as Readable,
      exited,
      async terminate(graceMs: number) {
        if (done) return;
        if (!bwrapped) killGroup(pid, 'SIGTERM');
        signal(workers(), 'SIGTERM');
        const timer = setTimeout(killAll, graceMs);
        await exited;
        clearTimeout(timer);
      },
    };
  }

  private async release(r: Reservation): Promise<void> {
    if (r.cgroup) await r.cgroup.remove();
    r.cgroup = null;
    if (r.uid !== null) this.s.uids?.give(r.uid);
    r.uid = null;
    if (r.cpus) this.s.pinner?.give(r.cpus);
    r.cpus = null;
    if (r.stateDir) fs.rmSync(r.stateDir, { recursive: true, force: true });
    r.stateDir = null;
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const sb of this.idle.splice(0)) void this.discardServed(sb);
    const spare = await this.spare;
    this.spare = null;
    if (spare) {
      await spare.gate.discard();
      await this.release({ uid: spare.uid, cpus: null, stateDir: null, cgroup: spare.cgroup });
    }
    await Promise.allSettled([...this.releasing]);
    this.s.cgroups?.close();
  }
}
