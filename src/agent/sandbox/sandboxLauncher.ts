/**
 * Launches workers in bubblewrap (when configured) inside cgroups (when available).
 *
 * Start-up of one worker: reserve a uid and CPUs, create its cgroups with their limits, write its
 * passwd/group/start files, then spawn bwrap reading its options from fd 3. bwrap blocks on that
 * read, which is the gate: the agent moves it into the cgroups and only then sends the options,
 * so every process of the worker is born inside its cgroups. The start script reports on fd 4
 * once the sandbox is up; a sandbox that fails before that is a launch error, not a job failure.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { Readable, Writable } from 'node:stream';
import type { SandboxMode } from '../../shared/protocol/index.js';
import { killGroup, type LaunchSpec, type Launcher, type WorkerExit, type WorkerHandle } from '../launcher.js';
import type { AgentCgroups, TaskCgroup } from './cgroups.js';
import type { CpuPinner } from './cpus.js';
import { deviceRules, gpuDeviceNodes } from './gpus.js';
import { chownTree, groupFile, passwdFile, type Identity, type UidPool } from './identity.js';
import { bwrapOptions, SANDBOX_BIN_DIR, SANDBOX_START, type StaticLayout } from './layout.js';
import { childrenOf, descendantsOf, signal } from './processTree.js';
import { READY_FD, shellExportable, startScript } from './startScript.js';
import { taskEnv } from './taskEnv.js';

export interface BwrapSettings {
  path: string;
  version: string;
  layout: StaticLayout;
  /** setpriv, when the agent is root and drops each task to its own uid. */
  setpriv: string | null;
  /** bwrap runs as an unprivileged user and needs a user namespace. */
  userns: boolean;
}

export interface SandboxSettings {
  bwrap: BwrapSettings | null;
  cgroups: AgentCgroups | null;
  pinner: CpuPinner | null;
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

export class SandboxLauncher implements Launcher {
  private readonly releasing = new Set<Promise<void>>();

  constructor(
    readonly mode: SandboxMode,
    readonly detail: string,
    private readonly s: SandboxSettings,
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
    r.uid = bwrap?.setpriv ? (s.uids?.take() ?? null) : null;
    const id: Identity = { uid: r.uid ?? s.self.uid, gid: r.uid ?? s.self.gid, name: 'raysub', home: spec.cwd };
    const gpuNodes = gpuDeviceNodes(s.devDir, spec.gpuIds);
    if (s.cgroups) {
      r.cpus = Number.isInteger(spec.resources.cpus) ? (s.pinner?.take(spec.resources.cpus) ?? null) : null;
      r.cgroup = s.cgroups.createTask(spec.key, {
        memoryBytes: spec.resources.memory,
        cpus: spec.resources.cpus,
        cpusetCpus: r.cpus,
        pidsMax: s.pidsMax,
        deviceRules: deviceRules(gpuNodes),
      });
    }
    const env = taskEnv(spec, { sandboxed: bwrap !== null, user: id.name, binDir: SANDBOX_BIN_DIR });
    let child: ChildProcess;
    let gateInput: string;
    if (bwrap) {
      const dir = path.join(s.stateDir, spec.key);
      r.stateDir = dir;
      fs.mkdirSync(dir, { mode: 0o700 });
      const files = { passwd: path.join(dir, 'passwd'), group: path.join(dir, 'group'), start: path.join(dir, 'start') };
      fs.writeFileSync(files.passwd, passwdFile(id), { mode: 0o644 });
      fs.writeFileSync(files.group, groupFile(id), { mode: 0o644 });
      // A `/bin/sh -c` worker reads the start script itself rather than being exec'd by it.
      const [sh, dashC, line] = spec.argv;
      const sourced = spec.argv.length === 3 && sh === '/bin/sh' && dashC === '-c' && shellExportable(env);
      const command = sourced ? ['/bin/sh', '-c', `. ${SANDBOX_START}\n${line ?? ''}`] : ['/bin/sh', SANDBOX_START, ...spec.argv];
      // The start script holds the job's environment: readable by the task's user only.
      fs.writeFileSync(files.start, startScript(env, { openFiles: s.openFiles, processes: r.uid !== null ? s.pidsMax : null }, s.envBinary, sourced), { mode: 0o400 });
      if (r.uid !== null) {
        fs.chownSync(files.start, r.uid, r.uid);
        chownTree(spec.cwd, r.uid, r.uid);
      }
      const options = bwrapOptions(bwrap.layout, { cwd: spec.cwd, readOnlyPaths: spec.readOnlyPaths, network: spec.network, ...files, devices: gpuNodes, userns: bwrap.userns, ownUid: r.uid !== null });
      const drop = bwrap.setpriv && r.uid !== null ? [bwrap.setpriv, '--reuid', String(r.uid), '--regid', String(r.uid), '--clear-groups', '--inh-caps=-all', '--bounding-set=-all', '--no-new-privs', '--'] : [];
      // bwrap itself runs with an empty environment: it is privileged, and the job's variables are not for it.
      child = spawn(bwrap.path, ['--args', '3', '--', ...drop, ...command], {
        cwd: '/',
        env: {},
        detached: true,
        stdio: ['ignore', 'pipe', 'pipe', 'pipe', 'pipe'],
      });
      gateInput = options.join('\0') + '\0';
    } else {
      child = spawn('/bin/sh', ['-c', processGate(s.openFiles), 'raysub-worker', ...spec.argv], {
        cwd: spec.cwd,
        env,
        detached: true,
        stdio: ['ignore', 'pipe', 'pipe', 'pipe', 'pipe'],
      });
      gateInput = 'go\n';
    }
    const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, sig) => resolve({ code, signal: sig })));
    const pid = await spawned(child);
    try {
      r.cgroup?.join(pid);
    } catch (err) {
      child.kill('SIGKILL');
      await exit;
      throw new Error(`could not move the worker into its cgroups: ${(err as Error).message}`, { cause: err });
    }
    const gate = child.stdio[3] as Writable;
    // A sandbox that dies before reading its options closes the pipe; ready() reports why.
    gate.on('error', () => undefined);
    gate.end(gateInput);
    await ready(child, exit);
    return this.handle(child, pid, exit, r);
  }

  private handle(child: ChildProcess, pid: number, exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>, r: Reservation): WorkerHandle {
    const bwrapped = this.s.bwrap !== null;
    const exited: Promise<WorkerExit> = exit.then(async ({ code, signal: sig }) => {
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
    await Promise.allSettled([...this.releasing]);
    this.s.cgroups?.close();
  }
}

function spawned(child: ChildProcess): Promise<number> {
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('spawn', () => (child.pid === undefined ? reject(new Error('spawn gave no pid')) : resolve(child.pid)));
  });
}

/**
 * Wait for the start script's "ok"; if the sandbox dies first, fail with what it printed. Until
 * then stderr is held in paused mode (a 'readable' listener that reads nothing): Node would
 * otherwise drain unread output when the child exits, and reading it in flowing mode could hit
 * its end before the worker's consumer is attached.
 */
async function ready(child: ChildProcess, exit: Promise<unknown>): Promise<void> {
  const fd = child.stdio[READY_FD] as Readable;
  const stderr = child.stderr as Readable;
  fd.on('error', () => undefined);
  const hold = (): void => undefined;
  stderr.on('readable', hold);
  // Resolves on "ok", or on close: bwrap and its init hold this fd until the sandbox ends.
  const up = await new Promise<boolean>((resolve) => {
    let got = '';
    fd.on('data', (d: Buffer) => {
      got += d.toString();
      if (got.includes('ok')) resolve(true);
    });
    fd.once('close', () => resolve(false));
  });
  fd.destroy();
  stderr.off('readable', hold);
  if (up) return;
  await exit;
  let text = '';
  for await (const chunk of stderr) if (text.length < 4000) text += (chunk as Buffer).toString();
  throw new Error(text.trim().slice(0, 4000) || 'the sandbox exited before the worker started');
}
