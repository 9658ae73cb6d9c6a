/**
 * What a worker sees. An allow-list: the system directories read-only, the interpreters'
 * prefixes read-only, its own working directory writable, a private /tmp and /dev/shm, a fresh
 * /proc for its own PID namespace, a minimal /dev. Nothing else of the host exists inside; what
 * is secret but sits inside an allowed directory (unreadable files in /etc, the agent's work dir
 * or the head's data dir below a bound path) is covered.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Interpreter } from './interpreters.js';
import { interpreterLinks } from './interpreters.js';
import { isWithin, MountPlan } from './mountPlan.js';

/** Where raysub's own files appear inside the sandbox. */
export const SANDBOX_RUN_DIR = '/run/raysub';
export const SANDBOX_BIN_DIR = `${SANDBOX_RUN_DIR}/bin`;
export const SANDBOX_START = `${SANDBOX_RUN_DIR}/start`;
export const SANDBOX_INIT = `${SANDBOX_RUN_DIR}/init`;
/** A served sandbox's control directory (its start file and output FIFOs; see native/raysub-init.c). */
export const SANDBOX_CTL = `${SANDBOX_RUN_DIR}/ctl`;
/** Where a sandbox that serves any job's tasks holds the job roots it binds each task's directories from (root's alone: native/binds.c). */
export const SANDBOX_JOBS = `${SANDBOX_RUN_DIR}/jobs`;

/** The system part of a Linux root, bound read-only where present (symlinks, as on merged-/usr systems, are kept as symlinks). */
export const SYSTEM_DIRS = ['/usr', '/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32', '/etc'];

export interface Mask {
  path: string;
  dir: boolean;
}

export interface StaticLayout {
  system: ({ kind: 'ro'; path: string } | { kind: 'symlink'; path: string; target: string })[];
  /** Interpreter prefixes and operator-configured paths, read-only. */
  roBinds: string[];
  masks: Mask[];
  /** name -> real executable, linked from SANDBOX_BIN_DIR. */
  links: Map<string, string>;
  /** Paths that must never be visible (the agent's work dir, the head's data dir). */
  hidden: string[];
  maskFile: string;
  maskDir: string;
  /** Why a configured path was not bound. */
  refused: string[];
}

export interface LayoutConfig {
  interpreters: readonly Interpreter[];
  extraBinds: readonly string[];
  hidden: readonly string[];
  /** The agent's home: never bound, nor anything above it. */
  home: string | null;
  maskFile: string;
  maskDir: string;
  systemDirs?: readonly string[];
}

function lstat(p: string): fs.Stats | null {
  try {
    return fs.lstatSync(p);
  } catch {
    return null;
  }
}

/** Entries below `dir` that other users may not read: secrets (shadow, private keys) to cover inside. */
export function unreadableEntries(dir: string, depth = 6): Mask[] {
  const out: Mask[] = [];
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return out;
  }
  for (const name of names) {
    const p = path.join(dir, name);
    const st = lstat(p);
    if (!st || st.isSymbolicLink()) continue;
    const isDir = st.isDirectory();
    if ((st.mode & 0o004) === 0 || (isDir && (st.mode & 0o001) === 0)) out.push({ path: p, dir: isDir });
    else if (isDir && depth > 0) out.push(...unreadableEntries(p, depth - 1));
  }
  return out;
}

export function planLayout(cfg: LayoutConfig): StaticLayout {
  const refused: string[] = [];
  const system: StaticLayout['system'] = [];
  for (const dir of cfg.systemDirs ?? SYSTEM_DIRS) {
    const st = lstat(dir);
    if (!st) continue;
    if (st.isSymbolicLink()) system.push({ kind: 'symlink', path: dir, target: fs.readlinkSync(dir) });
    else if (st.isDirectory()) system.push({ kind: 'ro', path: dir });
  }
  const systemRo = system.filter((s) => s.kind === 'ro').map((s) => s.path);
  const hidden = [...new Set(cfg.hidden.map((h) => path.resolve(h)))];

  const wanted = [...cfg.interpreters.flatMap((i) => i.prefixes), ...cfg.extraBinds.map((p) => path.resolve(p))];
  const roBinds: string[] = [];
  for (const p of wanted) {
    // Hidden paths inside a bind are covered below; a bind holding the agent's home (keys, tokens) is refused outright.
    const why = p === '/' ? 'it is the root' : cfg.home && isWithin(cfg.home, p) ? "it contains the agent's home" : null;
    if (why) {
      refused.push(`${p}: ${why}`);
      continue;
    }
    if (!lstat(p)) {
      refused.push(`${p}: does not exist`);
      continue;
    }
    if ([...systemRo, ...roBinds].some((b) => isWithin(p, b))) continue;
    for (let i = roBinds.length - 1; i >= 0; i--) if (isWithin(roBinds[i] ?? '', p)) roBinds.splice(i, 1);
    roBinds.push(p);
  }

  const masks = systemRo.includes('/etc') ? unreadableEntries('/etc') : [];
  for (const h of hidden) {
    if ([...systemRo, ...roBinds].some((b) => isWithin(h, b))) masks.push({ path: h, dir: lstat(h)?.isDirectory() ?? true });
  }
  const links = interpreterLinks(cfg.interpreters.filter((i) => [...systemRo, ...roBinds].some((b) => isWithin(i.exe, b))));
  return { system, roBinds, masks, links, hidden, maskFile: cfg.maskFile, maskDir: cfg.maskDir, refused };
}

export interface TaskView {
  cwd: string;
  readOnlyPaths: readonly string[];
  /** Directories bound writable (the job's shared-memory object store). */
  writablePaths?: readonly string[];
  network: 'host' | 'none';
  /** Host files bound over /etc/passwd, /etc/group and the start script. */
  passwd: string;
  group: string;
  start: string;
  /**
   * A sandbox that serves one task after another (raysub-init --serve): its control directory
   * (bound at SANDBOX_CTL instead of the start file) and the directory to bind writable: the
   * task's own, or — for a sandbox that may run the job's next task — the job's directory holding
   * its tasks' directories, where the next one will appear. Each task directory is its uid's alone.
   * Or, for a sandbox that may run any job's tasks, `roots` instead: the directories holding every
   * job's directories (the tasks root, the in-job root, the object store's), bound where only
   * root may enter, and each covered at its own path by an empty tmpfs in which raysub-init binds
   * the directories of the job whose task runs (native/binds.c).
   */
  served?: { ctlDir: string; bindDir: string } | { ctlDir: string; roots: readonly string[] };
  /** raysub-init on the host, bound at SANDBOX_INIT (null: setpriv and a shell script start the worker). */
  init: string | null;
  /** bwrap installs the seccomp filter it reads from this fd (without raysub-init); null: none. */
  seccompFd?: number | null;
  /** Host device nodes to expose (the GPUs the task holds). */
  devices: readonly string[];
  /**
   * The task runs as a uid of its own, without groups: files only root or a group may read are
   * closed to it already, so covering them is skipped (each cover is a mount, at every start).
   */
  ownUid: boolean;
}

/**
 * The options every task gets, given on bwrap's command line rather than through the gate: were
 * the gate ever closed without options, bwrap would still run in new namespaces with an empty
 * root, where nothing can run.
 */
export function bwrapNamespaceArgs(userns: boolean, nestedUserns = false): string[] {
  const args = ['--unshare-pid', '--unshare-ipc', '--unshare-uts', '--unshare-cgroup-try', '--new-session', '--die-with-parent', '--clearenv'];
  // In a user namespace of its own (an unprivileged agent), tasks create none of their own
  // unless the job asked for them (the seccomp filter refuses them too).
  if (userns) args.push('--unshare-user', ...(nestedUserns ? [] : ['--disable-userns']));
  return args;
}

/** bwrap's mount options for one task, sent through the gate. */
export function bwrapOptions(layout: StaticLayout, task: TaskView): string[] {
  for (const p of [...task.readOnlyPaths, ...(task.writablePaths ?? [])]) {
    if (layout.hidden.some((h) => isWithin(h, p))) throw new Error(`refusing to expose ${p}: it contains a directory workers must not see`);
  }
  const plan = new MountPlan();
  if (task.network === 'none') plan.args.push('--unshare-net');
  if (task.seccompFd != null) plan.args.push('--seccomp', String(task.seccompFd));
  for (const s of layout.system) {
    if (s.kind === 'ro') plan.roBind(s.path);
    else plan.symlink(s.target, s.path);
  }
  // The fresh filesystems first: a bound path below /tmp or /run must land on top of them.
  plan.proc('/proc').dev('/dev').tmpfs('/dev/shm', '1777').tmpfs('/tmp', '1777').tmpfs('/run');
  plan.dir('/var').symlink('/tmp', '/var/tmp');
  plan.dir(SANDBOX_RUN_DIR).dir(SANDBOX_BIN_DIR);
  for (const p of layout.roBinds) plan.roBind(p);
  for (const m of layout.masks) {
    if (task.ownUid && !layout.hidden.includes(m.path)) continue;
    // Hidden directories become empty; secret files become an unreadable empty file.
    if (m.dir && layout.hidden.includes(m.path)) plan.tmpfs(m.path);
    else plan.roBind(m.dir ? layout.maskDir : layout.maskFile, m.path);
  }
  for (const [name, target] of layout.links) plan.symlink(target, path.join(SANDBOX_BIN_DIR, name));
  plan.roBind(task.passwd, '/etc/passwd').roBind(task.group, '/etc/group');
  if (task.served) plan.bind(task.served.ctlDir, SANDBOX_CTL);
  else plan.roBind(task.start, SANDBOX_START);
  if (task.init) plan.roBind(task.init, SANDBOX_INIT);
  for (const p of task.readOnlyPaths) if (!plan.coveredByBind(p)) plan.roBind(p);
  for (const p of task.writablePaths ?? []) plan.bind(p);
  for (const d of task.devices) plan.devBind(d);
  if (task.served && 'roots' in task.served) {
    plan.dir(SANDBOX_JOBS, '0700');
    // Writable: raysub-init binds each task's job directories from here, read-only or writable as the task has them.
    task.served.roots.forEach((root, i) => plan.bind(root, `${SANDBOX_JOBS}/${i}`));
    for (const root of task.served.roots) plan.tmpfs(root, '0755');
  } else {
    plan.bind(task.served ? task.served.bindDir : task.cwd);
  }
  plan.args.push('--remount-ro', '/', '--chdir', task.served ? '/' : task.cwd);
  return plan.args;
}
