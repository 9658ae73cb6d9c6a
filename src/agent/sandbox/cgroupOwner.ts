/**
 * Whose cgroup root is this? An agent's root is named `<node>-<work dir hash>@<owner>`, where the
 * owner is the agent process: its pid namespace, pid and start time (a reused pid has another).
 * An agent starting on the machine removes the roots of owners that are gone — killing what they
 * left running — and never touches a live agent's. Roots it cannot judge (no owner in the name,
 * or an owner in another pid namespace) are collected only once nothing has used them for a while.
 */
import fs from 'node:fs';
import path from 'node:path';
import { destroyTree, listPids } from './cgroupFiles.js';

export interface Owner {
  pidns: number;
  pid: number;
  start: number;
}

function pidNamespace(): number | null {
  try {
    return Number(/\[(\d+)\]/.exec(fs.readlinkSync('/proc/self/ns/pid'))?.[1] ?? NaN) || null;
  } catch {
    return null;
  }
}

/** A process's start time (clock ticks after boot; /proc/PID/stat field 22), or null if it is gone. */
export function startTime(pid: number): number | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields resume after the command name's last ")": state is field 3, starttime field 22.
    const v = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
    return Number.isFinite(v) ? v : null;
  } catch {
    return null;
  }
}

/** This process as an owner, for its root's name; null where /proc cannot tell. */
export function ownerTag(pid = process.pid): string | null {
  const pidns = pidNamespace();
  const start = startTime(pid);
  return pidns !== null && start !== null ? `${pidns}.${pid}.${start}` : null;
}

export function parseOwner(rootName: string): Owner | null {
  const m = /@(\d+)\.(\d+)\.(\d+)$/.exec(rootName);
  return m ? { pidns: Number(m[1]), pid: Number(m[2]), start: Number(m[3]) } : null;
}

/** Gone (false), alive (true), or cannot tell (null: another pid namespace). */
export function ownerAlive(o: Owner): boolean | null {
  if (o.pidns !== pidNamespace()) return null;
  return startTime(o.pid) === o.start;
}

/** How long a cgroup must have existed, empty, before an agent that cannot judge its owner collects it. */
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
 * Remove the roots under `top` (a hierarchy's raysub/) that agents which are gone left behind,
 * with whatever still runs in them; `keep` is the caller's own. `previous` — the caller's name
 * without an owner, as agents of earlier versions named their root — is the same agent's too.
 */
export function sweepLeftovers(top: string, keep: string, o: { unified: boolean; previous?: string }): string[] {
  const removed: string[] = [];
  const before = Date.now() - IDLE_BEFORE_SWEEP_MS;
  for (const e of fs.readdirSync(top, { withFileTypes: true })) {
    if (!e.isDirectory() || e.name === keep) continue;
    const dir = path.join(top, e.name);
    try {
      const owner = parseOwner(e.name);
      const alive = owner ? ownerAlive(owner) : null;
      if (alive === false || e.name === o.previous) {
        destroyTree(dir, o.unified, 1000);
        removed.push(e.name);
      } else if (alive === null && idleSince(dir, before)) {
        removeEmptyTree(dir);
        removed.push(e.name);
      }
    } catch {
      // raced with its agent: leave it
    }
  }
  return removed;
}
