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

/** Block this thread for `ms` (start-up only: a killed process takes a moment to leave its cgroup). */
function pause(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * Kill whatever is left in a cgroup directory tree, then remove it (deepest first), waiting up
 * to `waitMs` for killed processes to leave it.
 */
export function destroyTree(dir: string, unified: boolean, waitMs = 0): void {
  if (!fs.existsSync(dir)) return;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) destroyTree(path.join(dir, e.name), unified, waitMs);
  if (unified) {
    try {
      write(dir, 'cgroup.kill', '1');
    } catch {
      // kernels before 5.14 have no cgroup.kill
    }
  }
  const deadline = Date.now() + waitMs;
  for (;;) {
    signalAll(listPids(dir), 'SIGKILL');
    try {
      fs.rmdirSync(dir);
      return;
    } catch {
      // still busy: wait, or leave it for a later agent start
      if (Date.now() >= deadline) return;
      pause(5);
    }
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
