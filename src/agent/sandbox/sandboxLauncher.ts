/**
 * Launches workers in bubblewrap (when configured) inside cgroups (when available).
 *
 * One worker: reserve a uid and CPUs, compute its limits (once: every start mechanism renders the
 * same TaskLimits), create its cgroups, start bwrap at its gate (gate.ts) and move it into the
 * cgroups, write the task's files, open the gate. Moving a process into a cgroup can wait for an
 * RCU grace period (~10 ms) when no cgroup move happened lately, and forking the agent costs a
 * few more; so in bwrap mode one gate is kept started ahead — a spare, already in cgroups of its
 * own — and a task that arrives takes it, renames its cgroups and sets its limits. The next task
 * with the same request may run in the sandbox of the one before: of the same job, or of any job
 * where the sandbox binds each task's job directories itself (servedPool.ts).
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { background, guarded } from '../../shared/boundary.js';
import { RaysubError } from '../../shared/errors.js';
import type { Logger } from '../../shared/log.js';
import type { SandboxMode } from '../../shared/protocol/index.js';
import { groupAlive, killGroup, until, workerHandle, type LaunchSpec, type Launcher, type WorkerExit, type WorkerHandle } from '../launcher.js';
import { bwrapArgv, prepareBwrapTask, type JobBind } from './bwrapTask.js';
import { startGate, type Gate } from './gate.js';
import { BASE_DEVICE_RULES, deviceRules, gpuDeviceNodes } from './gpus.js';
import type { Identity } from './identity.js';
import { SANDBOX_BIN_DIR } from './layout.js';
import { isWithin } from './mountPlan.js';
import { shellLimitLines, spareLimits, taskLimits, type TaskLimits } from './limits.js';
import { taskSeccomp } from './seccomp.js';
import { childrenOf, descendantsOf, signal, supervisorsOf } from './processTree.js';
import { release, reservation, type Reservation } from './reservation.js';
import { boundIdentity, ServedPool, type ServedSandbox, type ServedTask } from './servedPool.js';
import type { SandboxSettings } from './settings.js';
import { removeStateDir } from './stateDir.js';
import { READY_FD } from './startScript.js';
import type { TaskCgroup } from './taskCgroup.js';
import { taskEnv } from './taskEnv.js';

/**
 * Names served sandboxes' directories: counted per process, not per launcher, since launchers
 * share the state dir (the start-up probe's trial launcher and the agent's own).
 */
let servedCount = 0;

/** The gate for workers without bwrap: wait for the agent's word on fd 3, set limits, exec. */
function processGate(limits: TaskLimits, mergeStderr: boolean): string {
  const merge = mergeStderr ? ['exec 2>&1'] : [];
  return ['IFS= read -r go <&3 || exit 125', 'exec 3<&-', ...shellLimitLines(limits.rlimits), `printf ok >&${READY_FD}`, `exec ${READY_FD}>&-`, ...merge, 'exec "$@"'].join('; ');
}

interface Spare {
  gate: Gate;
  uid: number | null;
  cgroup: TaskCgroup | null;
}

/** One task as this launcher runs it, computed once per launch. */
interface Plan extends ServedTask {
  gpuNodes: string[];
  /** What a served sandbox must share with the task to run it; null: it needs one of its own. */
  key: string | null;
}

/** How served sandboxes may take a task (the launcher's reuseOf). */
interface Reuse {
  key: string;
  /** The task's job directories, for a sandbox that serves any job's tasks; null: a sandbox of its job's. */
  binds: JobBind[] | null;
  /** What the sandbox binds once, for all the tasks it serves. */
  boundPaths: string[];
  /** The paths the sandbox binds once, read-only and writable (the task's others are its job's own, in `binds`). */
  shared: { readOnly: string[]; writable: string[] };
}

export interface LauncherOptions {
  log: Logger;
  /** Keep a spare gate started ahead (bwrap mode). */
  keepSpare?: boolean;
  /** The settings' state directory is this launcher's: removed when it closes (the start-up probe's trial launcher shares it). */
  ownsStateDir?: boolean;
}

export class SandboxLauncher implements Launcher {
  private readonly releasing = new Set<Promise<unknown>>();
  private spare: Promise<Spare | null> | null = null;
  private spares = 0;
  private closed = false;
  private readonly pool: ServedPool;
  private readonly log: Logger;
  private readonly keepSpare: boolean;
  private readonly ownsStateDir: boolean;
  /** Directories in which each job has a directory of its own that its tasks read (see reuseOf). */
  private readonly jobRoots: string[];

  constructor(
    readonly mode: SandboxMode,
    readonly detail: string,
    private readonly s: SandboxSettings,
    o: LauncherOptions,
  ) {
    this.log = o.log;
    this.keepSpare = o.keepSpare ?? true;
    this.ownsStateDir = o.ownsStateDir ?? false;
    this.jobRoots = s.reuse?.injobRoot ? [s.reuse.injobRoot] : [];
    this.pool = new ServedPool({ settings: s, log: o.log, track: (p) => this.track(p), closed: () => this.closed });
  }

  /** How many tasks this launcher runs at once at most: a uid each, where tasks get their own. */
  get capacity(): number {
    return Math.min(this.s.uids?.size ?? Infinity, this.s.maxTasks);
  }

  /** Memory is limited (a cgroup2 without controllers only tracks and kills). */
  get cgroups(): boolean {
    return this.s.cgroups?.has('memory') ?? false;
  }

  get limits(): readonly string[] {
    return this.s.cgroups?.limits ?? [];
  }

  /** Spares are served sandboxes (raysub-init --serve). */
  private get serving(): boolean {
    return this.s.reuse !== null && this.s.bwrap?.init != null && this.s.uids !== null;
  }

  private track(p: Promise<unknown>): void {
    const settled = p.then(
      () => undefined,
      () => undefined,
    );
    this.releasing.add(settled);
    void settled.finally(() => this.releasing.delete(settled));
  }

  /** The directories a sandbox serving any job binds its tasks' job directories from (native/binds.c): the tasks root, then the read-only ones. */
  private get roots(): string[] {
    const reuse = this.s.reuse;
    return reuse ? [reuse.tasksRoot, ...this.jobRoots] : [];
  }

  addJobRoot(root: string): void {
    const dir = path.resolve(root);
    if (!this.s.reuse || this.roots.some((r) => isWithin(dir, r) || isWithin(r, dir))) return;
    this.jobRoots.push(dir);
    // The spare started ahead was given the roots before: start it again with this one.
    const spare = this.spare;
    this.spare = null;
    void spare
      ?.then(async (sp) => {
        if (!sp) return;
        await sp.gate.discard();
        await release(this.s, reservation({ uid: sp.uid, cgroup: sp.cgroup }));
      })
      .catch((err: unknown) => this.log.warn({ err }, 'could not give back a spare sandbox'))
      .finally(() => this.prestart());
  }

  /**
   * What a served sandbox must share with a task to run it; null: the task needs one of its own.
   * A task whose own directories are its job's directory in the tasks root and its job's
   * directories in the other job roots (in-job, object store) may run in a sandbox that served
   * any job (which binds them before it starts); any other, only in one that served its own job.
   */
  private reuseOf(spec: LaunchSpec): Reuse | null {
    const reuse = this.s.reuse;
    // The sandbox binds the group's directory: the task's must lie in it, as the workspace makes it.
    if (!this.serving || !reuse || spec.group === undefined || path.dirname(spec.cwd) !== path.join(reuse.tasksRoot, spec.group)) return null;
    // The same request too: limits a task does not set (no memory limit, no CPU quota) are not
    // written at all, so a sandbox keeps those of the task before it.
    const request = [spec.network, spec.gpuIds, spec.resources, spec.cpuQuota !== false, spec.userNamespaces === true];
    const writable = spec.writablePaths ?? [];
    const ownRo = spec.readOnlyPaths.filter((p) => this.jobRoots.includes(path.dirname(p)));
    const ownRw = writable.filter((p) => this.jobRoots.includes(path.dirname(p)));
    const shared = { readOnly: spec.readOnlyPaths.filter((p) => !ownRo.includes(p)), writable: writable.filter((p) => !ownRw.includes(p)) };
    const roots = this.roots;
    const anyJob =
      spec.userNamespaces !== true &&
      path.basename(path.dirname(spec.cwd)) === spec.group &&
      ![...shared.readOnly, ...shared.writable].some((p) => roots.some((root) => isWithin(p, root) || isWithin(root, p)));
    if (!anyJob) {
      const bound = [path.dirname(spec.cwd), ...spec.readOnlyPaths, ...writable];
      return { key: JSON.stringify([spec.group, spec.readOnlyPaths, writable, ...request]), binds: null, boundPaths: bound, shared: { readOnly: spec.readOnlyPaths, writable } };
    }
    const own = (p: string, rw: boolean): JobBind => ({ root: roots.indexOf(path.dirname(p)), name: path.basename(p), rw });
    const binds: JobBind[] = [{ root: 0, name: spec.group, rw: true }, ...ownRo.map((p) => own(p, false)), ...ownRw.map((p) => own(p, true))];
    return { key: JSON.stringify(['any job', roots, shared, ...request]), binds, boundPaths: [...shared.readOnly, ...shared.writable], shared };
  }

  async launch(spec: LaunchSpec): Promise<WorkerHandle> {
    const { s } = this;
    const reuse = this.reuseOf(spec);
    const key = reuse?.key ?? null;
    const boundPaths = reuse?.boundPaths ?? [path.dirname(spec.cwd), ...spec.readOnlyPaths, ...(spec.writablePaths ?? [])];
    const warm = reuse === null ? null : await this.pool.take(reuse.key, { spec, boundPaths });
    const r = reservation();
    try {
      if (s.cgroups && spec.cpuQuota !== false && Number.isInteger(spec.resources.cpus)) r.cpus = s.pinner?.take(spec.resources.cpus) ?? null;
      const gpuNodes = gpuDeviceNodes(s.devDir, spec.gpuIds);
      // The filter needs bubblewrap's sandbox (raysub-init or bwrap --seccomp install it).
      const seccomp = s.bwrap ? taskSeccomp(s.seccomp, spec.userNamespaces === true) : null;
      const limits = taskLimits({ resources: spec.resources, cpusetCpus: r.cpus, deviceRules: deviceRules(gpuNodes), pidsMax: s.pidsMax, openFiles: s.openFiles, ownUid: s.uids !== null, seccomp, cpuQuota: spec.cpuQuota });
      const env = taskEnv(spec, { sandboxed: s.bwrap !== null, user: 'raysub', binDir: SANDBOX_BIN_DIR });
      const plan: Plan = { spec, env, limits, gpuNodes, key, boundPaths, binds: reuse?.binds ?? null };
      if (warm) return await this.pool.run(warm, plan, r, false);
      return await this.start(plan, r, reuse?.shared ?? { readOnly: spec.readOnlyPaths, writable: spec.writablePaths ?? [] });
    } catch (err) {
      await release(s, r);
      throw err;
    }
  }

  /** `shared`: the task's paths a served sandbox binds once (see reuseOf). */
  private async start(plan: Plan, r: Reservation, shared: Reuse['shared']): Promise<WorkerHandle> {
    const { s } = this;
    const { spec, env, limits, key } = plan;
    const bwrap = s.bwrap;
    // A served sandbox runs a task that cannot share it (key null) once, then ends.
    const serve = bwrap !== null && this.serving;
    // A spare's namespaces refuse nested user namespaces where bwrap makes one itself.
    const ownGate = bwrap?.userns === true && spec.userNamespaces === true;

    let gate: Gate;
    const spare = bwrap && !ownGate ? await this.takeSpare() : null;
    if (spare) {
      ({ gate, uid: r.uid, cgroup: r.cgroup } = spare);
      try {
        r.cgroup?.rename(spec.key);
      } catch {
        // keeps its spare's name: only cosmetic
      }
    } else {
      r.uid = await this.takeUid();
      r.cgroup = s.cgroups?.createTask(spec.key, limits) ?? null;
      gate = bwrap
        ? // bwrap itself runs with an empty environment: it is privileged, and the job's variables are not for it.
          await startGate(bwrap.path, bwrapArgv(bwrap, r.uid, { serve, roots: this.roots, userNamespaces: spec.userNamespaces }), { cwd: '/', env: {}, cgroup: r.cgroup, serve, filterFd: !bwrap.init })
        : await startGate('/bin/sh', ['-c', processGate(limits, spec.mergeStderr === true), 'raysub-worker', ...spec.argv], { cwd: spec.cwd, env, cgroup: r.cgroup });
    }
    let input = 'go\n';
    try {
      if (spare) r.cgroup?.setLimits(limits);
      if (bwrap) {
        const id: Identity = { uid: r.uid ?? s.self.uid, gid: r.uid ?? s.self.gid, name: 'raysub', home: spec.cwd };
        r.stateDir = path.join(s.stateDir, serve ? `served-${++servedCount}` : spec.key);
        const task = { bwrap, envBinary: s.envBinary, spec, env, limits, id, ownUid: r.uid !== null };
        const served = !serve ? null : plan.binds ? { roots: this.ensureRoots(), readOnlyPaths: shared.readOnly, writablePaths: shared.writable } : { bindDir: key === null ? spec.cwd : path.dirname(spec.cwd) };
        input = await prepareBwrapTask(task, { devices: plan.gpuNodes, dir: r.stateDir, served });
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
      const sb: ServedSandbox = { gate, served: gate.served, uid: r.uid, cgroup: r.cgroup, dir: r.stateDir, key, bound: boundIdentity(plan.boundPaths), job: spec.group ?? null, idle: null, output: [] };
      Object.assign(r, { uid: null, cgroup: null, stateDir: null });
      try {
        await gate.open(input, limits.seccomp);
      } catch (err) {
        await this.pool.discard(sb);
        throw err;
      }
      setImmediate(guarded(this.log, 'starting a spare sandbox', () => this.prestart()));
      return this.pool.run(sb, plan, r, true);
    }
    await gate.open(input, limits.seccomp);
    // The next spare is started once this worker is on its way, not in its path.
    setImmediate(guarded(this.log, 'starting a spare sandbox', () => this.prestart()));
    return this.handle(gate, r);
  }

  /** The roots, made where missing (the in-job root appears with a job's first in-job directory): bwrap binds them. */
  private ensureRoots(): string[] {
    for (const root of this.roots) fs.mkdirSync(root, { recursive: true, mode: 0o711 });
    return this.roots;
  }

  /**
   * A uid for a task, or null where tasks run as the agent's own. With none free: a sandbox
   * waiting for its job's next task gives its uid up, or a task that has just exited gives its
   * own back (an exit is reported before its cgroups are removed and its keys cleared). Only
   * with none of these is the node at capacity: a typed error the task reports, never a crash.
   */
  private async takeUid(): Promise<number | null> {
    const uids = this.s.bwrap ? this.s.uids : null;
    if (!uids) return null;
    for (;;) {
      const uid = uids.take();
      if (uid !== null) return uid;
      if (await this.pool.evictOldest()) continue;
      const back = this.releasing.size > 0 ? Promise.race(this.releasing) : uids.settling();
      if (back) await back;
      else throw new RaysubError('NODE_AT_CAPACITY', `this node runs ${this.capacity} tasks at once, its capacity; the task was not started`);
    }
  }

  /** Start a spare gate in the background, if this launcher keeps one and has none. */
  prestart(): void {
    const bwrap = this.s.bwrap;
    if (!bwrap || !this.keepSpare || this.closed || this.spare) return;
    this.spare = (async (): Promise<Spare | null> => {
      const r = reservation();
      try {
        // No uid free: no spare (never one running as the agent's uid where tasks get their own).
        if (this.s.uids && (r.uid = this.s.uids.take()) === null) return null;
        r.cgroup = this.s.cgroups?.createTask(`spare-${++this.spares}`, spareLimits(this.s.pidsMax, BASE_DEVICE_RULES)) ?? null;
        const gate = await startGate(bwrap.path, bwrapArgv(bwrap, r.uid, { serve: this.serving, roots: this.roots }), { cwd: '/', env: {}, cgroup: r.cgroup, serve: this.serving, filterFd: !bwrap.init });
        return { gate, uid: r.uid, cgroup: r.cgroup };
      } catch (err) {
        this.log.debug({ err }, 'no spare sandbox');
        await release(this.s, r).catch((e: unknown) => this.log.warn({ err: e }, "could not give back a failed spare sandbox's resources"));
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
    await release(this.s, reservation({ uid: spare.uid, cgroup: spare.cgroup }));
    return null;
  }

  private handle(gate: Gate, r: Reservation): WorkerHandle {
    const { child, pid } = gate;
    const bwrapped = this.s.bwrap !== null;
    let stopping = false;
    const exited: Promise<WorkerExit> = gate.exit.then(async ({ code, signal: sig }) => {
      // During a stop the task's other processes have their grace period too (in bwrap raysub-init
      // waits for them: native/reap.c); terminate() kills what is left when it ends.
      if (stopping && !bwrapped) await until(() => (r.cgroup ? r.cgroup.pids().length === 0 : !groupAlive(pid)));
      // Whatever the worker left behind goes with it.
      if (!bwrapped) killGroup(pid, 'SIGKILL');
      await r.cgroup?.drain();
      const oom = r.cgroup?.oomKilled() ?? false;
      const counted = r.cgroup?.usage();
      // Nothing of the task runs any more; removing its cgroups need not delay the exit report.
      const removal = new Promise<void>((resolve) => setImmediate(resolve)).then(() => release(this.s, r));
      this.track(removal);
      background(this.log, "releasing a task's sandbox", removal);
      return { code, signal: sig, oom, ...(counted ? { usage: { cpu_s: counted.cpuS, peak_memory: counted.peakMemory } } : {}) };
    });
    const workers = (): number[] => {
      if (!bwrapped) return r.cgroup?.pids() ?? [];
      // Not bwrap itself: SIGTERM to it would tear the sandbox down with no grace for the worker.
      const keep = new Set([pid, ...childrenOf(pid)]);
      return (r.cgroup ? r.cgroup.pids() : descendantsOf(pid)).filter((p) => !keep.has(p));
    };
    return workerHandle({
      pid,
      stdout: child.stdout as Readable,
      stderr: child.stderr as Readable,
      exited,
      stopping: () => (stopping = true),
      askToEnd: (sig) => {
        if (!bwrapped) killGroup(pid, sig);
        // raysub-init first: the signal tells it a stop is under way, before the worker can exit.
        const first = bwrapped ? supervisorsOf(pid) : [];
        signal(first, sig);
        signal(workers().filter((p) => !first.includes(p)), sig);
      },
      killAll: () => {
        r.cgroup?.kill();
        if (bwrapped) signal(childrenOf(pid), 'SIGKILL'); // the namespace's init: its death ends every process inside
        else killGroup(pid, 'SIGKILL');
      },
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    this.pool.discardIdle();
    const spare = await this.spare;
    this.spare = null;
    if (spare) {
      await spare.gate.discard();
      await release(this.s, reservation({ uid: spare.uid, cgroup: spare.cgroup }));
    }
    await Promise.allSettled([...this.releasing]);
    this.s.cgroups?.close();
    if (this.ownsStateDir) removeStateDir(this.s.stateDir);
  }
}
