/**
 * The agent's work dir: packages fetched once per name, unpacked once (read-only), and a private
 * writable copy per task attempt.
 */
import fs from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { archiveKind, extractArchive, inspectArchive } from '../shared/archive.js';
import { RaysubError } from '../shared/errors.js';
import type { HeadLink } from './headLink.js';

export class Workspace {
  readonly packagesDir: string;
  readonly unpackedDir: string;
  readonly tasksDir: string;
  readonly spoolDir: string;
  private readonly inflight = new Map<string, Promise<string>>();

  constructor(
    readonly root: string,
    private readonly head: HeadLink,
  ) {
    this.packagesDir = path.join(root, 'packages');
    this.unpackedDir = path.join(root, 'unpacked');
    this.tasksDir = tasksDirOf(root);
    this.spoolDir = path.join(root, 'spool');
    for (const d of [root, this.packagesDir, this.unpackedDir, this.tasksDir, this.spoolDir]) fs.mkdirSync(d, { recursive: true, mode: 0o711 });
    // Leftovers of a previous run of this agent belong to attempts the head has since fenced.
    for (const d of [this.tasksDir, this.spoolDir]) {
      for (const f of fs.readdirSync(d)) fs.rmSync(path.join(d, f), { recursive: true, force: true });
    }
  }

  /** The unpacked, read-only tree of a package; fetched and unpacked once even if many ask at once. */
  unpacked(name: string, signal: AbortSignal): Promise<string> {
    const dir = path.join(this.unpackedDir, name);
    if (fs.existsSync(dir)) return Promise.resolve(dir);
    let p = this.inflight.get(name);
    if (!p) {
      p = this.fetchAndUnpack(name, dir, signal).finally(() => this.inflight.delete(name));
      this.inflight.set(name, p);
    }
    return p;
  }

  private async fetchAndUnpack(name: string, dir: string, signal: AbortSignal): Promise<string> {
    const kind = archiveKind(name);
    if (!kind) throw new RaysubError('INVALID_PACKAGE', `unsupported package ${name}`);
    const file = path.join(this.packagesDir, name);
    if (!fs.existsSync(file)) {
      const tmp = `${file}.${process.pid}.part`;
      const body = await this.head.download(name, signal);
      await pipeline(body, fs.createWriteStream(tmp, { mode: 0o600 }), { signal });
      fs.renameSync(tmp, file);
    }
    await inspectArchive(file, kind, Number.MAX_SAFE_INTEGER);
    const tmpDir = `${dir}.${process.pid}.tmp`;
    fs.rmSync(tmpDir, { recursive: true, force: true });
    if (kind === 'whl') {
      fs.mkdirSync(tmpDir, { recursive: true });
      fs.copyFileSync(file, path.join(tmpDir, name));
    } else {
      await extractArchive(file, kind, tmpDir);
    }
    makeReadOnly(tmpDir);
    fs.renameSync(tmpDir, dir);
    return dir;
  }

  /**
   * A fresh private working directory for one attempt, holding a copy of the package (if any).
   * With a `group` (the job) it lies in the group's directory: a sandbox serving the job's tasks
   * one after another binds that directory, and sees the next task's directory appear in it.
   */
  createTaskDir(key: string, source: string | null, group: string | null = null): string {
    const parent = group === null ? this.tasksDir : path.join(this.tasksDir, group);
    if (group !== null) fs.mkdirSync(parent, { recursive: true, mode: GROUP_DIR_MODE });
    const dir = path.join(parent, key);
    fs.rmSync(dir, { recursive: true, force: true });
    if (source) {
      fs.cpSync(source, dir, { recursive: true, verbatimSymlinks: true, mode: fs.constants.COPYFILE_FICLONE });
      makeWritable(dir);
    } else {
      fs.mkdirSync(dir, { recursive: true, mode: TASK_DIR_MODE });
    }
    return dir;
  }

  removeTaskDir(dir: string): void {
    fs.rmSync(dir, { recursive: true, force: true });
    const parent = path.dirname(dir);
    if (parent === this.tasksDir) return;
    // A group's directory outlives its last task a while: the job's next task here may reuse a
    // sandbox that has this very directory bound (a new one would be another inode).
    setTimeout(() => {
      try {
        fs.rmdirSync(parent);
      } catch {
        // in use again, or gone
      }
    }, GROUP_DIR_LINGER_MS).unref();
  }
}

/** Where an agent with work dir `root` keeps its tasks' directories. */
export function tasksDirOf(root: string): string {
  return path.join(root, 'tasks');
}

/** A group's directory: the names of the job's task directories are no secret to its tasks. */
const GROUP_DIR_MODE = 0o755;
const GROUP_DIR_LINGER_MS = 30_000;

/** A task's directory is its own (the sandbox gives it to the task's uid): no other user on the host reads it. */
const TASK_DIR_MODE = 0o700;

function walk(dir: string, fn: (p: string, st: fs.Stats) => void): void {
  for (const name of fs.readdirSync(dir)) {
    const p = path.join(dir, name);
    const st = fs.lstatSync(p);
    if (st.isDirectory()) walk(p, fn);
    fn(p, st);
  }
}

function makeReadOnly(dir: string): void {
  walk(dir, (p, st) => {
    if (!st.isSymbolicLink()) fs.chmodSync(p, st.mode & ~0o222);
  });
}

function makeWritable(dir: string): void {
  fs.chmodSync(dir, TASK_DIR_MODE);
  walk(dir, (p, st) => {
    if (!st.isSymbolicLink()) fs.chmodSync(p, st.mode | 0o200);
  });
}
