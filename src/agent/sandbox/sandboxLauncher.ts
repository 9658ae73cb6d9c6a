/**
 * Launches workers in bubblewrap (when configured) inside cgroups (when available).
 *
 * One worker: reserve a uid and CPUs, create its cgroups, start bwrap at its gate (gate.ts) and
 * move it into the cgroups, write the task's files, open the gate. Moving a process into a cgroup
 * can wait for an RCU grace period (~10 ms) when no cgroup move happened lately, and forking the
 * agent costs a few more; so in bwrap mode one gate is kept started ahead — a spare, already in
 * cgroups of its own — and a task that arrives takes it, renames its cgroups and sets its limits.
 */
import path from 'node:path';
import fs from 'node:fs';
import type { Readable } from 'node:stream';
import type { SandboxMode } from '../../shared/protocol/index.js';
import { killGroup, type LaunchSpec, type Launcher, type WorkerExit, type WorkerHandle } from '../launcher.js';
import { bwrapArgv, prepareBwrapTask } from './bwrapTask.js';
import type { AgentCgroups, CgroupLimits, TaskCgroup } from './cgroups.js';
import type { CpuPinner } from './cpus.js';
import { startGate, type Gate } from './gate.js';
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
}

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

export class SandboxLauncher implements Launcher {
  private readonly releasing = new Set<Promise<void>>();
  private spare: Promise<Spare | null> | null = null;
  private spares = 0;
  private closed = false;

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

  async launch(spec: LaunchSpec): Promise<WorkerHandle> {
    const r: Reservation = { uid: null, cpus: null, stateDir: null, cgroup: null };
    try {
      return await this.start(spec, r);
    } catch (err) {
      await this.release(r);
      throw err;
    }
  }

  private async start(spec: LaunchSpec, r: Reservation): Promise<WorkerHandle> {
    const { s } = this;
    const bwrap = s.bwrap;
    const gpuNodes = gpuDeviceNodes(s.devDir, spec.gpuIds);
    if (s.cgroups && Number.isInteger(spec.resources.cpus)) r.cpus = s.pinner?.take(spec.resources.cpus) ?? null;
    const limits: CgroupLimits = { memoryBytes: spec.resources.memory, cpus: spec.resources.cpus, cpusetCpus: r.cpus, pidsMax: s.pidsMax, deviceRules: deviceRules(gpuNodes) };
    const env = taskEnv(spec, { sandboxed: bwrap !== null, user: 'raysub', binDir: SANDBOX_BIN_DIR });

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
          await startGate(bwrap.path, bwrapArgv(bwrap, r.uid), { cwd: '/', env: {} }, r.cgroup)
        : await startGate('/bin/sh', ['-c', processGate(s.openFiles), 'raysub-worker', ...spec.argv], { cwd: spec.cwd, env }, r.cgroup);
    }
    let input = 'go\n';
    try {
      if (spare) r.cgroup?.setLimits(limits);
      if (bwrap) {
        const id: Identity = { uid: r.uid ?? s.self.uid, gid: r.uid ?? s.self.gid, name: 'raysub', home: spec.cwd };
        r.stateDir = path.join(s.stateDir, spec.key);
        input = prepareBwrapTask(bwrap, s, spec, env, id, r.uid !== null, gpuNodes, r.stateDir);
      }
      await gate.joined;
    } catch (err) {
      // A gate that died by itself says why on stderr; that beats the error it caused here.
      const said = await gate.discard();
      const byItself = (await gate.exit).signal !== 'SIGKILL';
      throw new Error(byItself && said ? said : `could not start the sandbox: ${(err as Error).message}`, { cause: err });
    }
    await gate.open(input);
    // The next spare is started once this worker is on its way, not in its path.
    setImmediate(() => this.prestart());
    return this.handle(gate, r);
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
        return { gate: await startGate(bwrap.path, bwrapArgv(bwrap, uid), { cwd: '/', env: {} }, cgroup), uid, cgroup };
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
