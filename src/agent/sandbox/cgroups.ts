/**
 * Kernel-enforced limits for workers. cgroup v1 controllers (memory, cpu, cpuset, pids, devices)
 * carry the limits; a cgroup2 hierarchy, even one without controllers, tracks the whole process
 * tree and kills it at once with `cgroup.kill`. Every cgroup lives under
 * `<mount>/raysub/<agent>/<task>`: a root of raysub's own, never the cgroup the agent was started
 * in (which belongs to whoever started it).
 */
import fs from 'node:fs';
import path from 'node:path';
import { formatCpuList, parseCpuList } from './cpus.js';

export type V1Controller = 'memory' | 'cpu' | 'cpuset' | 'pids' | 'devices';
export const V1_CONTROLLERS: readonly V1Controller[] = ['memory', 'cpu', 'cpuset', 'pids', 'devices'];
type Hierarchy = V1Controller | 'unified';

export interface CgroupMounts {
  v1: Partial<Record<V1Controller, string>>;
  unified: string | null;
}

function unescapeMount(p: string): string {
  return p.replace(/\\([0-7]{3})/g, (_m, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** Where each hierarchy is mounted, from /proc/self/mountinfo. */
export function findCgroupMounts(mountinfo: string): CgroupMounts {
  const out: CgroupMounts = { v1: {}, unified: null };
  for (const line of mountinfo.split('\n')) {
    const [pre, post] = line.split(' - ');
    if (!pre || !post) continue;
    const mountPoint = unescapeMount(pre.split(' ')[4] ?? '');
    const [fstype, , superOpts = ''] = post.split(' ');
    if (fstype === 'cgroup2') out.unified ??= mountPoint;
    if (fstype !== 'cgroup') continue;
    for (const opt of superOpts.split(',')) {
      const c = V1_CONTROLLERS.find((v) => v === opt);
      if (c) out.v1[c] ??= mountPoint;
    }
  }
  return out;
}

export interface CgroupLimits {
  /** Bytes; 0 leaves memory unlimited. */
  memoryBytes: number;
  /** CPU quota in CPUs; 0 sets no quota (the task only gets a small share). */
  cpus: number;
  /** CPUs to pin to; null: every CPU the agent may use. */
  cpusetCpus: readonly number[] | null;
  pidsMax: number;
  /** v1 `devices.allow` rules after denying everything; null leaves devices alone. */
  deviceRules: readonly string[] | null;
}

const CFS_PERIOD_US = 100_000;

function write(dir: string, file: string, value: string): void {
  fs.writeFileSync(path.join(dir, file), value);
}

function read(dir: string, file: string): string {
  return fs.readFileSync(path.join(dir, file), 'utf8');
}

function listPids(dir: string): number[] {
  try {
    return read(dir, 'cgroup.procs').split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

function signalAll(pids: readonly number[], signal: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
}

/** Kill whatever is left in a cgroup directory tree, then remove it (deepest first). */
function destroyTree(dir: string, unified: boolean): void {
  if (!fs.existsSync(dir)) return;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) destroyTree(path.join(dir, e.name), unified);
  if (unified) {
    try {
      write(dir, 'cgroup.kill', '1');
    } catch {
      // kernels before 5.14 have no cgroup.kill
    }
  }
  signalAll(listPids(dir), 'SIGKILL');
  try {
    fs.rmdirSync(dir);
  } catch {
    // still busy: a later agent start removes it
  }
}

type ApplyLimits = (h: Hierarchy, dir: string, limits: CgroupLimits) => void;

export class TaskCgroup {
  constructor(
    private readonly dirs: Map<Hierarchy, string>,
    private memoryLimited: boolean,
    private readonly apply: ApplyLimits,
  ) {}

  /** Set (or change) the limits; allowed while processes are inside. */
  setLimits(limits: CgroupLimits): void {
    for (const [h, dir] of this.dirs) this.apply(h, dir, limits);
    this.memoryLimited = limits.memoryBytes > 0;
  }

  /** Rename in every hierarchy (a spare's cgroups take the name of the task they end up running). */
  rename(name: string): void {
    for (const [h, dir] of this.dirs) {
      const to = path.join(path.dirname(dir), name);
      fs.renameSync(dir, to);
      this.dirs.set(h, to);
    }
  }

  /**
   * Move `pid` into every hierarchy (before it execs the worker, so all its children follow).
   * The first move may wait for an RCU grace period (~10 ms when no move happened lately): it
   * goes through the thread pool while the agent does other work. The others follow at once,
   * synchronously: on cgroupfs a synchronous write costs ~10 µs of CPU, an asynchronous one ~150.
   */
  async join(pid: number): Promise<void> {
    const [first, ...rest] = [...this.dirs.values()];
    if (first === undefined) return;
    await fs.promises.writeFile(path.join(first, 'cgroup.procs'), String(pid));
    for (const dir of rest) write(dir, 'cgroup.procs', String(pid));
  }

  /** Every process of the task, as the host sees them. */
  pids(): number[] {
    const dir = this.dirs.get('unified') ?? this.dirs.get('pids') ?? this.dirs.values().next().value;
    return dir ? listPids(dir) : [];
  }

  /** The kernel's OOM killer killed something in this task (since the count was `since`). */
  oomKilled(since = 0): boolean {
    return this.memoryLimited && this.oomKills() > since;
  }

  /** How many processes the OOM killer killed in this cgroup so far. */
  oomKills(): number {
    const dir = this.dirs.get('memory');
    if (!dir) return 0;
    try {
      return Number(/^oom_kill\s+(\d+)/m.exec(read(dir, 'memory.oom_control'))?.[1] ?? 0);
    } catch {
      return 0;
    }
  }

  kill(): void {
    const unified = this.dirs.get('unified');
    if (unified) {
      try {
        write(unified, 'cgroup.kill', '1');
        return;
      } catch {
        // fall through to signalling each process
      }
    }
    signalAll(this.pids(), 'SIGKILL');
  }

  /**
   * Kill what is left and wait (a bounded time) for it to be gone. When a worker exits, its
   * sandbox's init is usually still tearing the namespaces down; cgroup2's `cgroup.events`
   * changes the moment the cgroup empties, so the wait ends then rather than at the next poll.
   */
  async drain(): Promise<void> {
    if (this.pids().length === 0) return;
    const deadline = Date.now() + 5000;
    let wake: (() => void) | null = null;
    const unified = this.dirs.get('unified');
    let watcher: fs.FSWatcher | null = null;
    try {
      if (unified) watcher = fs.watch(path.join(unified, 'cgroup.events'), () => wake?.());
    } catch {
      // polling alone, below
    }
    try {
      for (let i = 0; this.pids().length > 0 && Date.now() < deadline; i++) {
        this.kill();
        await new Promise<void>((resolve) => {
          const timer = setTimeout(done, Math.min(50, 2 ** i));
          function done(): void {
            clearTimeout(timer);
            wake = null;
            resolve();
          }
          wake = done;
        });
      }
    } finally {
      watcher?.close();
    }
  }

  /**
   * Drain, then remove the cgroups. The v1 memory cgroup goes through the thread pool: removing
   * it takes the kernel milliseconds, time in which the agent would not read the head's next
   * assignment. The others are removed synchronously (~10 µs each; ~50 through the pool).
   */
  async remove(): Promise<void> {
    await this.drain();
    await Promise.all([...this.dirs].map(([h, dir]) => removeCgroupDir(dir, h === 'memory')));
  }
}

/** rmdir, retried a while if the cgroup is still busy (its last process is exiting). */
async function removeCgroupDir(dir: string, offLoop: boolean): Promise<void> {
  for (let i = 0; i < 20; i++) {
    try {
      if (offLoop) await fs.promises.rmdir(dir);
      else fs.rmdirSync(dir);
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      await new Promise((r) => setTimeout(r, 10));
    }
  }
}

/** The agent's own cgroup root in each hierarchy it can use. */
export class AgentCgroups {
  private constructor(
    readonly roots: ReadonlyMap<Hierarchy, string>,
    private readonly cpusetMems: string,
    readonly allCpus: readonly number[],
  ) {}

  get controllers(): V1Controller[] {
    return V1_CONTROLLERS.filter((c) => this.roots.has(c));
  }

  get unified(): boolean {
    return this.roots.has('unified');
  }

  has(c: V1Controller): boolean {
    return this.roots.has(c);
  }

  /**
   * Create `raysub/<name>` in every hierarchy where that is possible, after removing what a
   * previous run of the same agent left behind. `problems` says why a hierarchy is unusable.
   */
  static open(mounts: CgroupMounts, name: string): { cgroups: AgentCgroups | null; problems: string[] } {
    const result = AgentCgroups.openRoots(mounts, name);
    // Roots with no process left anywhere below them are garbage (an agent that was SIGKILLed, or
    // an idle one, which recreates its root when it next needs it): any agent may collect them.
    for (const root of result.cgroups?.roots.values() ?? []) sweepIdle(path.dirname(root), path.basename(root));
    return result;
  }

  private static openRoots(mounts: CgroupMounts, name: string): { cgroups: AgentCgroups | null; problems: string[] } {
    const problems: string[] = [];
    const roots = new Map<Hierarchy, string>();
    const all: [Hierarchy, string | undefined][] = [...V1_CONTROLLERS.map((c): [Hierarchy, string | undefined] => [c, mounts.v1[c]]), ['unified', mounts.unified ?? undefined]];
    let cpusetMems = '';
    let allCpus: number[] = [];
    for (const [h, mount] of all) {
      if (!mount) {
        if (h !== 'devices') problems.push(`no ${h === 'unified' ? 'cgroup2' : h} hierarchy`);
        continue;
      }
      const top = path.join(mount, 'raysub');
      const root = path.join(top, name);
      try {
        fs.mkdirSync(top, { recursive: true });
        if (h === 'cpuset') {
          // A cpuset cgroup takes no process until its CPUs and memory nodes are set.
          cpusetMems = read(mount, 'cpuset.mems').trim();
          const cpus = read(mount, 'cpuset.effective_cpus').trim() || read(mount, 'cpuset.cpus').trim();
          for (const d of [top, root]) {
            fs.mkdirSync(d, { recursive: true });
            if (read(d, 'cpuset.cpus').trim() === '') write(d, 'cpuset.cpus', cpus);
            if (read(d, 'cpuset.mems').trim() === '') write(d, 'cpuset.mems', cpusetMems);
          }
          allCpus = parseCpuList(read(root, 'cpuset.cpus'));
        }
        if (fs.existsSync(root)) {
          for (const e of fs.readdirSync(root, { withFileTypes: true })) if (e.isDirectory()) destroyTree(path.join(root, e.name), h === 'unified');
        }
        fs.mkdirSync(root, { recursive: true });
        roots.set(h, root);
      } catch (err) {
        problems.push(`${h}: ${(err as Error).message}`);
      }
    }
    if (roots.size === 0) return { cgroups: null, problems };
    return { cgroups: new AgentCgroups(roots, cpusetMems, allCpus), problems };
  }

  /** A cgroup per hierarchy for one task attempt, with its limits written before anything joins. */
  createTask(key: string, limits: CgroupLimits): TaskCgroup {
    const dirs = new Map<Hierarchy, string>();
    const apply: ApplyLimits = (h, dir, l) => applyLimits(h, dir, l, this);
    try {
      for (const [h, root] of this.roots) {
        const dir = path.join(root, key);
        try {
          fs.mkdirSync(dir);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
          // Another agent collected our idle root: make it again.
          this.remakeRoot(h, root);
          fs.mkdirSync(dir);
        }
        dirs.set(h, dir);
        apply(h, dir, limits);
      }
    } catch (err) {
      for (const dir of dirs.values()) {
        try {
          fs.rmdirSync(dir);
        } catch {
          // nothing joined it yet; a leftover is removed at the next start
        }
      }
      throw err;
    }
    return new TaskCgroup(dirs, limits.memoryBytes > 0, apply);
  }

  private remakeRoot(h: Hierarchy, root: string): void {
    fs.mkdirSync(root, { recursive: true });
    if (h !== 'cpuset') return;
    // raysub/ itself may have gone too (its last agent closed): parents first.
    for (const d of [path.dirname(root), root]) {
      if (read(d, 'cpuset.cpus').trim() === '') write(d, 'cpuset.cpus', formatCpuList(this.allCpus));
      if (read(d, 'cpuset.mems').trim() === '') write(d, 'cpuset.mems', this.cpusetMems);
    }
  }

  get mems(): string {
    return this.cpusetMems;
  }

  /** Remove the agent's roots (its tasks' cgroups are already gone). */
  close(): void {
    for (const [h, root] of this.roots) {
      destroyTree(root, h === 'unified');
      try {
        fs.rmdirSync(path.dirname(root));
      } catch {
        // other agents on this machine still use raysub/
      }
    }
  }
}

/** How long a cgroup must have existed, empty, before another agent may collect it. */
const IDLE_BEFORE_SWEEP_MS = 60_000;

/** No process in the tree, and every cgroup in it older than `before` (a cgroup's mtime is its creation). */
function idleSince(dir: string, before: number): boolean {
  if (listPids(dir).length > 0 || fs.statSync(dir).mtimeMs > before) return false;
  return fs.readdirSync(dir, { withFileTypes: true }).every((e) => !e.isDirectory() || idleSince(path.join(dir, e.name), before));
}

/**
 * Remove the trees under `top` (other than `keep`) that no process uses and nothing created
 * lately: a cgroup an agent has just made, before its worker joins, is not garbage.
 */
function sweepIdle(top: string, keep: string): void {
  const before = Date.now() - IDLE_BEFORE_SWEEP_MS;
  for (const e of fs.readdirSync(top, { withFileTypes: true })) {
    if (!e.isDirectory() || e.name === keep) continue;
    const dir = path.join(top, e.name);
    try {
      if (idleSince(dir, before)) removeEmptyTree(dir);
    } catch {
      // raced with its agent: leave it
    }
  }
}

function removeEmptyTree(dir: string): void {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) removeEmptyTree(path.join(dir, e.name));
  fs.rmdirSync(dir);
}

function applyLimits(h: Hierarchy, dir: string, limits: CgroupLimits, agent: AgentCgroups): void {
  switch (h) {
    case 'memory':
      if (limits.memoryBytes > 0) {
        write(dir, 'memory.limit_in_bytes', String(limits.memoryBytes));
        // Without this a task on a machine with swap would page out instead of hitting its limit.
        try {
          write(dir, 'memory.memsw.limit_in_bytes', String(limits.memoryBytes));
        } catch {
          // swap accounting is off: nothing to limit
        }
      }
      break;
    case 'cpu':
      write(dir, 'cpu.shares', String(Math.max(2, Math.round(limits.cpus * 1024))));
      if (limits.cpus > 0) {
        write(dir, 'cpu.cfs_period_us', String(CFS_PERIOD_US));
        write(dir, 'cpu.cfs_quota_us', String(Math.max(1000, Math.round(limits.cpus * CFS_PERIOD_US))));
      }
      break;
    case 'cpuset':
      write(dir, 'cpuset.mems', agent.mems);
      write(dir, 'cpuset.cpus', limits.cpusetCpus ? formatCpuList(limits.cpusetCpus) : formatCpuList(agent.allCpus));
      break;
    case 'pids':
      write(dir, 'pids.max', String(limits.pidsMax));
      break;
    case 'devices':
      if (limits.deviceRules) {
        write(dir, 'devices.deny', 'a');
        for (const rule of limits.deviceRules) write(dir, 'devices.allow', rule);
      }
      break;
    case 'unified':
      break;
  }
}
