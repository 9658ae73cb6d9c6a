/**
 * The agent's work dir: the package cache (fetched and unpacked once, read-only) and a private
 * writable copy per task attempt. Copies and removals of task directories run in the file
 * worker thread: a package of many files never stalls the agent's heartbeats.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { RaysubError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import { packageNameOfUri } from '../shared/protocol/packages.js';
import { remotePackageOf, unfetchedMessage, unfetchedScheme } from '../shared/remotePackages.js';
import { fileOp } from './files/index.js';
import type { HeadLink } from './headLink.js';
import { LingeringDirs } from './lingeringDirs.js';
import { PackageCache, type PackageCacheOptions, type PackageLease } from './packageCache.js';
import { nodeFaultOf, WorkDirHealth } from './workDirHealth.js';

export type { PackageLease } from './packageCache.js';

/** The URI of a task's working dir: its package on the head, or the remote archive its runtime env names; null for none. */
export function workingDirUri(pkg: string | null | undefined, runtimeEnv: Readonly<Record<string, unknown>>): string | null {
  if (pkg) return `gcs://${pkg}`;
  const wd = runtimeEnv.working_dir;
  return typeof wd === 'string' && wd !== '' ? wd : null;
}

export class Workspace {
  readonly packagesDir: string;
  readonly unpackedDir: string;
  readonly tasksDir: string;
  readonly spoolDir: string;
  readonly packages: PackageCache;
  /** Whether the work dir takes writes (the node reports itself unhealthy while it does not). */
  readonly health: WorkDirHealth;
  private readonly groupDirs: LingeringDirs;

  constructor(
    readonly root: string,
    head: Pick<HeadLink, 'download'>,
    private readonly opts: PackageCacheOptions,
    private readonly log: Logger,
  ) {
    this.packagesDir = path.join(root, 'packages');
    this.unpackedDir = path.join(root, 'unpacked');
    this.tasksDir = tasksDirOf(root);
    this.spoolDir = path.join(root, 'spool');
    this.groupDirs = new LingeringDirs(GROUP_DIR_LINGER_MS, removeIfEmpty, log);
    this.health = new WorkDirHealth(this.tasksDir, log.child({ component: 'health' }));
    for (const d of [root, this.tasksDir, this.spoolDir]) fs.mkdirSync(d, { recursive: true, mode: 0o711 });
    // Leftovers of a previous run of this agent belong to attempts the head has since fenced.
    for (const d of [this.tasksDir, this.spoolDir]) {
      for (const f of fs.readdirSync(d)) this.removeLater(path.join(d, f));
    }
    this.packages = new PackageCache(this.packagesDir, this.unpackedDir, head, opts, log.child({ component: 'packages' }));
    this.packages.start();
  }

  /** A lease on a package's unpacked, read-only tree (fetched and unpacked once even if many ask at once). */
  acquire(name: string, signal: AbortSignal): Promise<PackageLease> {
    return this.packages.acquire(name, signal);
  }

  /**
   * A lease on the tree a runtime env URI names: a package uploaded to the head (`gcs://`) or a
   * remote archive (`http(s)://`, fetched by this agent); any other URI fails the task's setup.
   */
  async acquireUri(uri: string, field: 'working_dir' | 'py_modules', signal: AbortSignal): Promise<PackageLease> {
    const remote = remotePackageOf(uri, field);
    if (remote) return this.packages.acquire(remote.name, signal, remote);
    const scheme = unfetchedScheme(uri);
    if (scheme) throw new RaysubError('PACKAGE_FETCH_FAILED', unfetchedMessage(uri, scheme));
    const name = packageNameOfUri(uri);
    if (name === null) throw new RaysubError('INVALID_RUNTIME_ENV', `${field}: "${uri}" is not a package URI`);
    return this.packages.acquire(name, signal);
  }

  /**
   * A fresh private working directory for one attempt, holding a copy of the package (if any).
   * With a `group` (the job) it lies in the group's directory: a sandbox serving the job's tasks
   * one after another binds that directory, and sees the next task's directory appear in it.
   */
  async createTaskDir(key: string, source: string | null, group: string | null = null): Promise<string> {
    const parent = group === null ? this.tasksDir : path.join(this.tasksDir, group);
    if (group !== null) fs.mkdirSync(parent, { recursive: true, mode: GROUP_DIR_MODE });
    const dir = path.join(parent, key);
    if (fs.existsSync(dir)) await this.removeNow(dir);
    if (source) {
      await fileOp({ op: 'copy', src: source, dest: dir, mode: TASK_DIR_MODE, maxEntries: this.opts.caps.maxEntries * 2 });
    } else {
      fs.mkdirSync(dir, { mode: TASK_DIR_MODE });
    }
    return dir;
  }

  /**
   * Whether `err`, a failure to fetch a package into this work dir or to make the task directory
   * `key` (under `group`'s), is the node's fault and not the job's: the file system refuses, one of
   * the agent's own directories is missing or denied, or the work dir fails a probe made now (which
   * also reports the node unhealthy). The description names the errno and path, or null.
   */
  async faultOf(err: unknown, key: string, group: string | null): Promise<string | null> {
    const groupDir = group === null ? this.tasksDir : path.join(this.tasksDir, group);
    const own = [this.root, this.tasksDir, this.packagesDir, this.unpackedDir, groupDir, path.join(groupDir, key)];
    const fault = nodeFaultOf(err, own);
    const reason = (await this.health.check()) ? null : (this.health.unhealthy?.reason ?? null);
    // The probe says what is wrong when the error itself misleads (a recursive mkdir on a
    // read-only file system fails with ENOENT).
    return fault !== null && reason !== null ? `${fault} (${reason})` : (fault ?? reason);
  }

  /** Remove a task's directory in the background. */
  removeTaskDir(dir: string): void {
    this.removeLater(dir);
    const parent = path.dirname(dir);
    if (parent === this.tasksDir) return;
    // A group's directory outlives its last task a while: the job's next task here may reuse a
    // sandbox that has this very directory bound (a new one would be another inode).
    this.groupDirs.touch(parent);
  }

  private async removeNow(dir: string): Promise<void> {
    await fileOp({ op: 'remove', path: dir });
  }

  /**
   * Rename a tree out of the way at once — out of its job's directory too, which a served sandbox
   * may still bind — then remove it off the event loop.
   */
  private removeLater(p: string): void {
    const trash = path.join(this.tasksDir, `.trash-${crypto.randomBytes(6).toString('hex')}`);
    try {
      fs.renameSync(p, trash);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      this.log.warn({ err, path: p }, 'could not move a directory away for removal');
      return;
    }
    void this.removeNow(trash).catch((err: unknown) => this.log.warn({ err: toMessage(err), path: trash }, 'could not remove a directory'));
  }

  close(): void {
    this.health.close();
    this.groupDirs.close();
    this.packages.close();
  }
}

function removeIfEmpty(dir: string): void {
  try {
    fs.rmdirSync(dir);
  } catch {
    // in use again, or gone
  }
}

function toMessage(err: unknown): string {
  return err instanceof RaysubError || err instanceof Error ? err.message : String(err);
}

/** Where an agent with work dir `root` keeps its tasks' directories. */
export function tasksDirOf(root: string): string {
  return path.join(root, 'tasks');
}

/** Where an agent with work dir `root` keeps each job's in-job directory (its socket and objects), one directory per job. */
export function injobDirOf(root: string): string {
  return path.join(root, 'j');
}

/** A group's directory: the names of the job's task directories are no secret to its tasks. */
const GROUP_DIR_MODE = 0o755;
const GROUP_DIR_LINGER_MS = 30_000;

/** A task's directory is its own (the sandbox gives it to the task's uid): no other user on the host reads it. */
const TASK_DIR_MODE = 0o700;
