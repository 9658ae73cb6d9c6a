/**
 * Served sandboxes (raysub-init --serve; where raysub-init runs and each task has its own uid):
 * when a task ends normally, its sandbox — namespaces, mounts, uid, cgroups — waits a moment for
 * the next task on this node with the same request, of the same job or (where the task's
 * directories allow it) of any job, which then starts with a request on a pipe instead of a new
 * bubblewrap. Between two tasks raysub-init kills everything the first left running, empties
 * /tmp and /dev/shm and removes IPC objects and message queues; the task's directory is new, and
 * for a task of another job the job directories bound are that job's (native/binds.c); limits
 * are set again. A sandbox whose task was stopped, timed out or hit its memory limit is never
 * reused, nor one whose task left shared memory charged to it (LEFT_MEMORY_MAX), nor one idle
 * for IDLE_MS. docs/sandbox.md has what tasks share.
 */
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { background, guarded } from '../../shared/boundary.js';
import type { Logger } from '../../shared/log.js';
import { workerHandle, type LaunchSpec, type WorkerExit, type WorkerHandle } from '../launcher.js';
import { bindsFile, servedFiles, writeTaskFiles, type JobBind } from './bwrapTask.js';
import type { Gate, Served } from './gate.js';
import type { Identity } from './identity.js';
import type { TaskLimits } from './limits.js';
import { childrenOf, descendantsOf, signal, supervisorsOf } from './processTree.js';
import { release, type Reservation } from './reservation.js';
import type { SandboxSettings } from './settings.js';
import type { TaskCgroup } from './taskCgroup.js';

/** The name of signal `n` (SIGKILL for 9), or null for a number this system does not name. */
export function signalName(n: number): NodeJS.Signals | null {
  for (const [name, num] of Object.entries(os.constants.signals)) if (num === n) return name as NodeJS.Signals;
  return null;
}

/** How long a served sandbox waits for its job's next task. */
export const IDLE_MS = 2000;
/** How long the job's next task waits for the last task's output to be read to its end before it takes another sandbox. */
export const OUTPUT_END_MS = 1000;
/** Served sandboxes kept waiting at most (each holds a uid, cgroups and three processes). */
export const MAX_IDLE = 8;

/** Shared memory a task may leave charged to its sandbox's cgroup (its job's objects) and the sandbox still serve the next task. */
export const LEFT_MEMORY_MAX = 4 * 2 ** 20;

/** A sandbox whose raysub-init runs one task after another. */
export interface ServedSandbox {
  gate: Gate;
  served: Served;
  uid: number | null;
  cgroup: TaskCgroup | null;
  /** Its host directory: passwd, group and the control directory (servedFiles). */
  dir: string;
  /** The tasks it may run next (those with its first task's reuse key); null: none. */
  key: string | null;
  /** boundIdentity() of what its first task had bound at start. */
  bound: string;
  /** The job of its last task (a sandbox serving any job binds each task's job directories). */
  job: string | null;
  idle: NodeJS.Timeout | null;
  /** The output streams of its last task (none before its first). */
  output: Readable[];
}

/** One task for a served sandbox: computed once by the launcher. */
export interface ServedTask {
  spec: LaunchSpec;
  env: Record<string, string>;
  limits: TaskLimits;
  /** The paths a sandbox binds once, for all its tasks (boundIdentity). */
  boundPaths: readonly string[];
  /** For a sandbox serving any job: the task's job directories, bound before it starts; null: the sandbox's own binds. */
  binds: readonly JobBind[] | null;
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
  // A FIFO fails only with its sandbox; the reader sees its end either way.
  stream.on('error', () => undefined);
  return {
    stream,
    release: () => {
      if (wr !== null) fs.closeSync(wr);
      wr = null;
    },
  };
}

/** Whether every stream has ended (or closed), waiting at most `ms` for them. */
function readToEnd(log: Logger, streams: readonly Readable[], ms: number): Promise<boolean> {
  const done = () => streams.every((st) => st.readableEnded || st.destroyed);
  if (done()) return Promise.resolve(true);
  return new Promise((resolve) => {
    const check = guarded(log, "waiting for a task's output to end", () => {
      if (done()) finish(true);
    });
    const finish = (v: boolean) => {
      clearTimeout(timer);
      for (const st of streams) st.off('end', check).off('close', check);
      resolve(v);
    };
    const timer = setTimeout(guarded(log, "waiting for a task's output to end", () => finish(false)), ms);
    for (const st of streams) st.on('end', check).on('close', check);
  });
}

/**
 * What a served sandbox bound once for all its tasks, as device:inode of each path ("" for one
 * that is gone): the job's directory (unless the sandbox binds each task's job directories) and
 * the other paths bound. One recreated since is not the one bound.
 */
export function boundIdentity(paths: readonly string[]): string {
  return paths
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

export interface ServedPoolDeps {
  settings: SandboxSettings;
  log: Logger;
  /** Follow a release to its end (the launcher's close() waits for them all). */
  track(p: Promise<unknown>): void;
  /** The launcher is closing: sandboxes are no longer kept. */
  closed(): boolean;
}

export class ServedPool {
  /** Served sandboxes waiting for a task, oldest first. */
  private readonly idle: ServedSandbox[] = [];

  constructor(private readonly d: ServedPoolDeps) {}

  /**
   * An idle served sandbox for `key` whose bound paths are still the ones it bound, if any — one
   * whose last task was of the same job first — once its last task's output is read to the end:
   * the next worker writes into the same FIFOs, and a reader of the last task still open (its last
   * bytes, or its end of file, not read yet) would take the next task's output as the last one's.
   */
  async take(key: string, t: Pick<ServedTask, 'spec' | 'boundPaths'>): Promise<ServedSandbox | null> {
    for (;;) {
      const job = t.spec.group ?? null;
      const fits = this.idle.filter((sb) => sb.key === key);
      const sb = fits.findLast((c) => c.job === job) ?? fits[fits.length - 1];
      if (!sb) return null;
      this.idle.splice(this.idle.indexOf(sb), 1);
      if (sb.idle) clearTimeout(sb.idle);
      sb.idle = null;
      const alive = sb.gate.child.exitCode === null && sb.gate.child.signalCode === null;
      if (alive && sb.bound === boundIdentity(t.boundPaths) && this.uidClean(sb, job) && (await readToEnd(this.d.log, sb.output, OUTPUT_END_MS))) return sb;
      this.discardLater(sb);
    }
  }

  /**
   * The sandbox's uid may pass to another job: the kernel holds no key of it (the seccomp filter
   * refuses the keyring calls by default; keyrings.ts has why keys would outlive the task).
   */
  private uidClean(sb: ServedSandbox, job: string | null): boolean {
    if (sb.job === job || sb.uid === null) return true;
    return !(this.d.settings.uids?.keys?.holders().has(sb.uid) ?? false);
  }

  /**
   * Its task left no more than LEFT_MEMORY_MAX of shared memory charged to its cgroup. Objects a
   * task wrote into its job's store stay charged to the cgroup of the sandbox that wrote them
   * (the kernel charges tmpfs pages to their first writer), so the next task there, of any job,
   * would start with them counted against its own memory limit.
   */
  private leftNoMemory(sb: ServedSandbox): boolean {
    return (sb.cgroup?.sharedMemory() ?? 0) <= LEFT_MEMORY_MAX;
  }

  /** Keep a served sandbox for the next task with its key, for IDLE_MS. */
  private park(sb: ServedSandbox): void {
    if (this.d.closed()) {
      this.discardLater(sb);
      return;
    }
    sb.idle = setTimeout(
      guarded(this.d.log, 'discarding an idle sandbox', () => {
        const i = this.idle.indexOf(sb);
        if (i >= 0) this.idle.splice(i, 1);
        this.discardLater(sb);
      }),
      IDLE_MS,
    );
    sb.idle.unref();
    this.idle.push(sb);
    while (this.idle.length > MAX_IDLE) {
      const oldest = this.idle.shift();
      if (oldest) this.discardLater(oldest);
    }
  }

  /** End a served sandbox and free what it holds; returns what it said on stderr. */
  discard(sb: ServedSandbox): Promise<string> {
    if (sb.idle) clearTimeout(sb.idle);
    sb.idle = null;
    const done = sb.gate.discard().then(async (said) => {
      await release(this.d.settings, { uid: sb.uid, cpus: null, stateDir: sb.dir, cgroup: sb.cgroup });
      return said;
    });
    this.d.track(done);
    return done;
  }

  private discardLater(sb: ServedSandbox): void {
    background(this.d.log, 'discarding a served sandbox', this.discard(sb));
  }

  /** End the sandbox idle longest, giving back its uid; false when none is idle. */
  async evictOldest(): Promise<boolean> {
    const oldest = this.idle.shift();
    if (!oldest) return false;
    await this.discard(oldest);
    return true;
  }

  /** Every idle sandbox ends (the launcher closes). */
  discardIdle(): void {
    for (const sb of this.idle.splice(0)) this.discardLater(sb);
  }

  /**
   * Run one task in a served sandbox (its first, whose files the launcher wrote, or the next of
   * its job). `r` holds the task's own reservation (its CPUs), given back at its exit.
   */
  async run(sb: ServedSandbox, t: ServedTask, r: Reservation, first: boolean): Promise<WorkerHandle> {
    const { settings: s } = this.d;
    const files = servedFiles(sb.dir);
    const bwrap = s.bwrap;
    if (!bwrap) throw new Error('a served sandbox without bubblewrap');
    try {
      if (!first) {
        const id: Identity = { uid: sb.uid ?? s.self.uid, gid: sb.uid ?? s.self.gid, name: 'raysub', home: t.spec.cwd };
        await writeTaskFiles({ bwrap, envBinary: s.envBinary, spec: t.spec, env: t.env, limits: t.limits, id, ownUid: sb.uid !== null }, files, true, true);
        sb.cgroup?.setLimits(t.limits);
      }
      // Read by raysub-init (root) before the task: which job's directories it binds.
      if (t.binds) fs.writeFileSync(files.binds, bindsFile(t.binds), { mode: 0o600 });
    } catch (err) {
      this.discardLater(sb);
      throw err;
    }
    sb.job = t.spec.group ?? null;
    const oomBefore = sb.cgroup?.oomKills() ?? 0;
    // A reused sandbox's counters hold its earlier tasks too: CPU is counted from here, the memory peak restarted where it can be.
    const before = first ? null : { cpuS: sb.cgroup?.usage().cpuS ?? null, peakReset: sb.cgroup?.resetPeak() ?? false };
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
      const why = await this.discard(sb);
      throw new Error(why || `the sandbox did not start the worker${said ? ` (it said "${said}")` : ''}`);
    }
    sb.output = [out.stream, err.stream];
    return this.handle(sb, r, out.stream, err.stream, oomBefore, before);
  }

  private handle(sb: ServedSandbox, r: Reservation, stdout: Readable, stderr: Readable, oomBefore: number, before: { cpuS: number | null; peakReset: boolean } | null): WorkerHandle {
    const { gate } = sb;
    let stopped = false;
    const exited: Promise<WorkerExit> = (async () => {
      const line = await Promise.race([sb.served.lines.next(), gate.exit.then(() => null)]);
      const m = line ? /^exit (-?\d+) (\d+)$/.exec(line) : null;
      let code: number | null;
      let sig: NodeJS.Signals | null;
      if (m) {
        // raysub-init says exactly how the worker ended: a code, or the signal that killed it.
        const n = Number(m[2]);
        sig = n > 0 ? signalName(n) : null;
        code = sig === null ? (n > 0 ? 128 + n : Number(m[1])) : null;
      } else {
        ({ code, signal: sig } = await gate.exit);
      }
      const oom = sb.cgroup?.oomKilled(oomBefore) ?? false;
      const counted = sb.cgroup?.usage();
      const usage = counted && {
        cpu_s: counted.cpuS === null ? null : Math.max(0, counted.cpuS - (before?.cpuS ?? 0)),
        peak_memory: before && !before.peakReset ? null : counted.peakMemory,
      };
      try {
        await release(this.d.settings, r);
      } finally {
        if (m && !stopped && !oom && sb.key !== null && this.leftNoMemory(sb)) this.park(sb);
        else this.discardLater(sb);
      }
      return { code, signal: sig, oom, ...(usage ? { usage } : {}) };
    })();
    // bwrap and the namespace's init stay out of a signal meant for the worker; raysub-init gets
    // it first, as the notice that a stop is under way (native/reap.c).
    const workers = (): number[] => {
      const outer = childrenOf(gate.pid);
      const keep = new Set([gate.pid, ...outer, ...outer.flatMap((p) => childrenOf(p))]);
      return (sb.cgroup ? sb.cgroup.pids() : descendantsOf(gate.pid)).filter((p) => !keep.has(p));
    };
    return workerHandle({
      pid: gate.pid,
      stdout,
      stderr,
      exited,
      stopping: () => (stopped = true),
      askToEnd: (sig) => {
        signal(supervisorsOf(gate.pid), sig);
        signal(workers(), sig);
      },
      killAll: () => {
        sb.cgroup?.kill();
        signal(childrenOf(gate.pid), 'SIGKILL');
      },
    });
  }
}
