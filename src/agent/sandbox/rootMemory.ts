/**
 * What all of an agent's tasks may use together: the memory the node offers (`--memory`), and never
 * so much that the machine itself runs out. The agent's cgroup root carries that limit (as the
 * kubelet's `kubepods` cgroup carries the node's allocatable memory), so tasks that together want
 * more than the node has are stopped by an out-of-memory kill inside that root, among the tasks,
 * and never by the machine's OOM killer choosing among the head, the agent and everything else.
 */
import os from 'node:os';
import { write } from './cgroupFiles.js';
import type { Hierarchy } from './cgroupMounts.js';

/** Kept for the machine itself: the larger of 256 MiB and 5% of its memory. */
export function systemReserve(total: number): number {
  return Math.max(256 * 1024 * 1024, Math.floor(total * 0.05));
}

/** The limit of the agent's root: what it offers, at most the machine's memory less its reserve. */
export function rootMemoryLimit(offered: number, total = os.totalmem()): number {
  return Math.max(64 * 1024 * 1024, Math.min(offered, total - systemReserve(total)));
}

/** Write the root's memory limit in hierarchy `h`; problems, if any (never fatal). */
export function limitRootMemory(h: Hierarchy, root: string, bytes: number, memoryViaV2: boolean): string[] {
  const v2 = h === 'unified';
  if (!(h === 'memory' || (v2 && memoryViaV2))) return [];
  try {
    if (v2) {
      write(root, 'memory.max', String(bytes));
    } else {
      write(root, 'memory.limit_in_bytes', String(bytes));
      try {
        write(root, 'memory.memsw.limit_in_bytes', String(bytes));
      } catch {
        // no swap accounting on this kernel: there is no swap to dodge the limit with
      }
    }
    return [];
  } catch (err) {
    return [`memory: the node's tasks together are not held to its memory (${(err as Error).message})`];
  }
}
