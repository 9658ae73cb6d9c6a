/**
 * What a task holds while it starts and runs — a uid, CPUs, its files, its cgroups — and giving
 * it all back. Everything taken is recorded here first, so every path gives back exactly what
 * it took.
 */
import fs from 'node:fs';
import type { SandboxSettings } from './settings.js';
import type { TaskCgroup } from './taskCgroup.js';

export interface Reservation {
  uid: number | null;
  cpus: number[] | null;
  stateDir: string | null;
  cgroup: TaskCgroup | null;
}

export function reservation(r: Partial<Reservation> = {}): Reservation {
  return { uid: null, cpus: null, stateDir: null, cgroup: null, ...r };
}

/**
 * Give back what `r` holds, and clear it (a second release gives nothing). The uid goes back
 * last, and only once the task's cgroups are gone: a uid that might still run a process is
 * never handed to another task.
 */
export async function release(s: Pick<SandboxSettings, 'uids' | 'pinner'>, r: Reservation): Promise<void> {
  const { cgroup, uid, cpus, stateDir } = r;
  Object.assign(r, reservation());
  try {
    if (cgroup) await cgroup.remove();
    if (uid !== null) s.uids?.give(uid);
  } finally {
    if (cpus) s.pinner?.give(cpus);
    if (stateDir) fs.rmSync(stateDir, { recursive: true, force: true });
  }
}
