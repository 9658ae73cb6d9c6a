/**
 * Who a worker is. An agent running as root gives each running task a uid of its own, from a
 * block derived from the agent's pid (so two agents on one machine never hand out the same uid
 * while both run); files the task writes are owned by that uid, and per-uid limits such as
 * RLIMIT_NPROC become per-task limits. An unprivileged agent runs tasks as itself.
 */
import type { Logger } from '../../shared/log.js';
import type { KeyCleaner } from './keyrings.js';
import { fileOp } from '../files/index.js';

const BLOCK_BASE = 2 ** 30;
export const UIDS_PER_AGENT = 1024;
const MAX_PID = 2 ** 20;

/** The first uid of this agent's block, or null when the block is not mapped in our user namespace. */
export function uidBlockFor(pid: number, uidMap: string): number | null {
  const base = BLOCK_BASE + (pid % MAX_PID) * UIDS_PER_AGENT;
  for (const line of uidMap.trim().split('\n')) {
    const [inside, , count] = line.trim().split(/\s+/).map(Number);
    if (inside === undefined || count === undefined) continue;
    if (base >= inside && base + UIDS_PER_AGENT <= inside + count) return base;
  }
  return null;
}

export interface UidPoolOptions {
  /** How many uids the pool hands out at most at once (UIDS_PER_AGENT). */
  size?: number;
  /** Keys the kernel keeps per uid (keyrings.ts): a uid with keys left goes back only once cleared. */
  keys?: KeyCleaner | null;
  log?: Logger;
}

/**
 * The agent's uids. A uid is free again once its task is gone and the kernel holds no key of it
 * (keyrings.ts); one whose keys cannot be cleared is kept out for good, and the pool is smaller.
 */
export class UidPool {
  private readonly used = new Set<number>();
  /** Uids never handed out again (the kernel kept keys of them). */
  private readonly kept = new Set<number>();
  private readonly clearing = new Set<Promise<void>>();
  private readonly limit: number;
  readonly keys: KeyCleaner | null;
  private readonly log: Logger | null;

  constructor(
    readonly base: number,
    o: UidPoolOptions = {},
  ) {
    this.limit = o.size ?? UIDS_PER_AGENT;
    this.keys = o.keys ?? null;
    this.log = o.log ?? null;
    // A previous agent given the same block may have left keys behind.
    for (const uid of this.keys?.holders() ?? []) if (uid >= base && uid < base + this.limit) this.clear(uid);
  }

  /** How many uids the pool hands out at most at once. */
  get size(): number {
    return this.limit - this.kept.size;
  }

  /** A free uid, or null when every one is in use (the caller decides what that means). */
  take(): number | null {
    for (let i = 0; i < this.limit; i++) {
      const uid = this.base + i;
      if (!this.used.has(uid)) {
        this.used.add(uid);
        return uid;
      }
    }
    return null;
  }

  /** The uid's task is gone: free it, or first clear the keys the kernel still holds of it. */
  give(uid: number): void {
    if (this.keys?.holders().has(uid)) this.clear(uid);
    else this.used.delete(uid);
  }

  /** Settles when a uid being cleared comes back (or is kept out); null when none is being cleared. */
  settling(): Promise<void> | null {
    return this.clearing.size > 0 ? Promise.race(this.clearing) : null;
  }

  private clear(uid: number): void {
    this.used.add(uid);
    const done = (this.keys?.clear(uid) ?? Promise.resolve(false))
      .catch(() => false)
      .then((cleared) => {
        if (cleared) this.used.delete(uid);
        else {
          this.kept.add(uid);
          this.log?.warn({ uid }, 'the kernel keeps keys of this uid that could not be cleared: it is not handed to another task');
        }
      })
      .finally(() => this.clearing.delete(done));
    this.clearing.add(done);
  }
}

export interface Identity {
  uid: number;
  gid: number;
  name: string;
  home: string;
}

/** A minimal /etc/passwd: programs that look up their own user (Python's getpass) work, and no host account is listed. */
export function passwdFile(id: Identity): string {
  const lines = ['root:x:0:0:root:/root:/usr/sbin/nologin', 'nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin'];
  if (id.uid !== 0 && id.uid !== 65534) lines.push(`${id.name}:x:${id.uid}:${id.gid}:raysub task:${id.home}:/bin/sh`);
  return lines.join('\n') + '\n';
}

export function groupFile(id: Identity): string {
  const lines = ['root:x:0:', 'nogroup:x:65534:'];
  if (id.gid !== 0 && id.gid !== 65534) lines.push(`${id.name}:x:${id.gid}:`);
  return lines.join('\n') + '\n';
}

/** Change the owner of a task's directory tree (not following symlinks) to its uid, off the event loop. */
export async function chownTree(dir: string, uid: number, gid: number): Promise<void> {
  await fileOp({ op: 'chown', dir, uid, gid });
}
