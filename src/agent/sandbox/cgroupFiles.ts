/** Reading, writing and tearing down cgroup directories. */
import fs from 'node:fs';
import path from 'node:path';

export function write(dir: string, file: string, value: string): void {
  fs.writeFileSync(path.join(dir, file), value);
}

export function read(dir: string, file: string): string {
  return fs.readFileSync(path.join(dir, file), 'utf8');
}

export function listPids(dir: string): number[] {
  try {
    return read(dir, 'cgroup.procs').split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

export function signalAll(pids: readonly number[], signal: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
}

/** Kill whatever is left in a cgroup directory tree, then remove it (deepest first). */
export function destroyTree(dir: string, unified: boolean): void {
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

/** rmdir, retried a while if the cgroup is still busy (its last process is exiting). */
export async function removeCgroupDir(dir: string, offLoop: boolean): Promise<void> {
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

/** How long a cgroup must have existed, empty, before another agent may collect it. */
const IDLE_BEFORE_SWEEP_MS = 60_000;

/** No process in the tree, and every cgroup in it older than `before` (a cgroup's mtime is its creation). */
function idleSince(dir: string, before: number): boolean {
  if (listPids(dir).length > 0 || fs.statSync(dir).mtimeMs > before) return false;
  return fs.readdirSync(dir, { withFileTypes: true }).every((e) => !e.isDirectory() || idleSince(path.join(dir, e.name), before));
}

function removeEmptyTree(dir: string): void {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) removeEmptyTree(path.join(dir, e.name));
  fs.rmdirSync(dir);
}

/**
 * Remove the trees under `top` (other than `keep`) that no process uses and nothing created
 * lately: a cgroup an agent has just made, before its worker joins, is not garbage.
 */
export function sweepIdle(top: string, keep: string): void {
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
