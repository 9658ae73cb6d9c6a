/**
 * One task's bubblewrap invocation. The command line is the same for every task of a uid
 * (namespaces, then raysub-init — or setpriv and a shell script where it was not built), so a gate
 * can be started before its task is known; what is the task's own — its passwd, group and start
 * file (environment, limits, command), its directory handed to its uid, its mounts — is written
 * when the task comes.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { LaunchSpec } from '../launcher.js';
import { SECCOMP_FD } from './gate.js';
import { chownTree, groupFile, passwdFile, type Identity } from './identity.js';
import { directArgv, initStartFile } from './init.js';
import { bwrapNamespaceArgs, bwrapOptions, SANDBOX_INIT, SANDBOX_START } from './layout.js';
import type { TaskLimits } from './limits.js';
import type { BwrapSettings } from './settings.js';
import { startScript } from './startScript.js';

/**
 * bwrap's command line for a task running as `uid` (null: the agent's own). `serve`: raysub-init
 * --serve, given the job roots a sandbox serving any job binds its tasks' directories from
 * (`roots`); `userNamespaces`: the job may create user namespaces (an unprivileged agent's
 * sandbox then lacks --disable-userns).
 */
export function bwrapArgv(bwrap: BwrapSettings, uid: number | null, o: { serve?: boolean; roots?: readonly string[]; userNamespaces?: boolean } = {}): string[] {
  const namespaces = bwrapNamespaceArgs(bwrap.userns, o.userNamespaces === true);
  if (bwrap.init) return [...namespaces, '--args', '3', '--', SANDBOX_INIT, ...(o.serve ? ['--serve', ...(o.roots ?? [])] : [])];
  const drop = bwrap.setpriv && uid !== null ? [bwrap.setpriv, '--reuid', String(uid), '--regid', String(uid), '--clear-groups', '--inh-caps=-all', '--bounding-set=-all', '--no-new-privs', '--'] : [];
  return [...namespaces, '--args', '3', '--', ...drop, '/bin/sh', SANDBOX_START];
}

export interface TaskFiles {
  passwd: string;
  group: string;
  start: string;
}

/** The files of a served sandbox (raysub-init --serve) in its host directory `dir`. */
export function servedFiles(dir: string): TaskFiles & { ctlDir: string; binds: string } {
  const ctlDir = path.join(dir, 'ctl');
  return { passwd: path.join(dir, 'passwd'), group: path.join(dir, 'group'), start: path.join(ctlDir, 'start'), ctlDir, binds: path.join(ctlDir, 'binds') };
}

/** A job directory a sandbox serving any job binds for a task: a directory in one of its roots. */
export interface JobBind {
  /** Index into the sandbox's roots (0: the tasks root, bound writable; 1: the in-job root, read-only). */
  root: number;
  name: string;
  rw: boolean;
}

/** The binds file raysub-init reads before a task (format in native/binds.c). */
export function bindsFile(binds: readonly JobBind[]): Buffer {
  const fields = ['raysub-binds 1', String(binds.length), ...binds.flatMap((b) => [String(b.root), b.name, b.rw ? 'rw' : 'ro'])];
  for (const b of binds) if (b.name === '' || b.name === '.' || b.name === '..' || b.name.includes('/') || b.name.includes('\0')) throw new Error(`not a directory name: ${JSON.stringify(b.name)}`);
  return Buffer.from(fields.join('\0') + '\0');
}

/** One task as its sandbox's files describe it. */
export interface BwrapTask {
  bwrap: BwrapSettings;
  /** env(1) inside the sandbox, for variables a shell cannot export (start-script path only). */
  envBinary: string | null;
  spec: LaunchSpec;
  /** The worker's environment, sandbox additions included (taskEnv.ts). */
  env: Record<string, string>;
  limits: TaskLimits;
  id: Identity;
  /** The task runs as a uid of its own (`id.uid`), not the agent's. */
  ownUid: boolean;
}

/**
 * Write a task's passwd, group and start file and give its directory to its uid. A served
 * sandbox's files are rewritten in place for each task (bound files keep their inode); `next`:
 * the sandbox's next task, of the same uid, whose group file is the one already there (its
 * passwd names the task's home, its directory).
 */
export async function writeTaskFiles(t: BwrapTask, files: TaskFiles, served: boolean, next = false): Promise<void> {
  const { bwrap, spec, env, id, ownUid } = t;
  fs.writeFileSync(files.passwd, passwdFile(id), { mode: 0o644 });
  if (!next) fs.writeFileSync(files.group, groupFile(id), { mode: 0o644 });
  if (bwrap.init) {
    // Read by raysub-init before it drops to the task's uid: the worker itself cannot read it.
    const argv = directArgv(spec.argv, bwrap.layout.links) ?? spec.argv;
    const file = initStartFile({ env, rlimits: t.limits.rlimits, seccomp: t.limits.seccomp, uid: ownUid ? id.uid : null, argv, cwd: served ? spec.cwd : null, mergeStderr: spec.mergeStderr });
    fs.writeFileSync(files.start, file, { mode: 0o400 });
  } else {
    // The start script holds the job's environment: readable by the task's user only.
    fs.writeFileSync(files.start, startScript(env, t.limits.rlimits, t.envBinary, spec.argv, spec.mergeStderr), { mode: 0o400 });
    if (ownUid) fs.chownSync(files.start, id.uid, id.gid);
  }
  // A walk over the task's whole directory: off the event loop.
  if (ownUid) await chownTree(spec.cwd, id.uid, id.gid);
}

/**
 * Write the task's files into `o.dir` and give its directory to its uid; returns bwrap's options
 * for the gate. `o.served`: a served sandbox (`dir` holds servedFiles()) binding `bindDir`, the
 * task's directory or the job's directory holding it — or, serving any job, binding each task's
 * job directories from `roots` (`readOnlyPaths`, `writablePaths`: the task's paths that are not
 * its job's own, which the sandbox binds once).
 */
export async function prepareBwrapTask(
  t: BwrapTask,
  o: { devices: readonly string[]; dir: string; served: { bindDir: string } | { roots: readonly string[]; readOnlyPaths: readonly string[]; writablePaths: readonly string[] } | null },
): Promise<string> {
  fs.mkdirSync(o.dir, { mode: 0o700 });
  const ctl = o.served ? servedFiles(o.dir) : null;
  const files = ctl ?? { passwd: path.join(o.dir, 'passwd'), group: path.join(o.dir, 'group'), start: path.join(o.dir, 'start') };
  if (ctl) fs.mkdirSync(ctl.ctlDir, { mode: 0o700 });
  await writeTaskFiles(t, files, o.served !== null);
  // Without raysub-init, bwrap installs the filter (sent on the gate's SECCOMP_FD).
  const seccompFd = !t.bwrap.init && t.limits.seccomp ? SECCOMP_FD : null;
  const view = { cwd: t.spec.cwd, readOnlyPaths: t.spec.readOnlyPaths, writablePaths: t.spec.writablePaths ?? [], network: t.spec.network, ...files, init: t.bwrap.init, seccompFd, devices: o.devices, ownUid: t.ownUid };
  let options: string[];
  if (!ctl || !o.served) options = bwrapOptions(t.bwrap.layout, view);
  else if ('roots' in o.served) {
    const { roots, readOnlyPaths, writablePaths } = o.served;
    options = bwrapOptions(t.bwrap.layout, { ...view, readOnlyPaths, writablePaths, served: { ctlDir: ctl.ctlDir, roots } });
  } else options = bwrapOptions(t.bwrap.layout, { ...view, served: { ctlDir: ctl.ctlDir, bindDir: o.served.bindDir } });
  return options.join('\0') + '\0';
}
