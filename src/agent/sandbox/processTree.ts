/**
 * A process tree read from /proc, for when no cgroup tracks a worker. Inside a PID namespace
 * orphans are re-parented to the namespace's init, so even processes that called setsid stay
 * descendants of the sandbox's init.
 */
import fs from 'node:fs';

function parentOf(pid: number): number | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name may contain spaces and parentheses: fields resume after the last ")".
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    return Number.isInteger(ppid) ? ppid : null;
  } catch {
    return null;
  }
}

export function childrenOf(pid: number): number[] {
  try {
    return fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').split(' ').filter(Boolean).map(Number);
  } catch {
    return descendantsOf(pid, 1);
  }
}

/** Every descendant of `root` (up to `depth` generations), parents before children. */
export function descendantsOf(root: number, depth = Infinity): number[] {
  const byParent = new Map<number, number[]>();
  for (const name of fs.readdirSync('/proc')) {
    const pid = Number(name);
    if (!Number.isInteger(pid)) continue;
    const ppid = parentOf(pid);
    if (ppid === null) continue;
    const list = byParent.get(ppid) ?? [];
    list.push(pid);
    byParent.set(ppid, list);
  }
  const out: number[] = [];
  let level = [root];
  for (let d = 0; d < depth && level.length > 0; d++) {
    level = level.flatMap((p) => byParent.get(p) ?? []);
    out.push(...level);
  }
  return out;
}

/**
 * The first program of a sandbox started as `gatePid` (bubblewrap): the child of the namespace's
 * init — raysub-init where it runs, which stays as the task's reaper.
 */
export function supervisorsOf(gatePid: number): number[] {
  return childrenOf(gatePid).flatMap((init) => childrenOf(init));
}

export function signal(pids: readonly number[], sig: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, sig);
    } catch {
      // gone already
    }
  }
}
