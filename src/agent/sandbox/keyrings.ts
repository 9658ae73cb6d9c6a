/**
 * The kernel's keyrings outlive a task. A uid's user, user-session and persistent keyrings stay
 * until they are invalidated, and with them every key a task of that uid put there (kernel
 * keys are per uid, not per process or namespace here): the next task given the uid could read
 * them. So a uid goes back to the pool only once the kernel holds no key of it — the agent asks
 * /proc/key-users when a task gives its uid back, and where keys are left raysub-init
 * (`--clear-keys UID`) invalidates those keyrings and waits for the kernel to collect them.
 * A uid that cannot be cleared is never handed out again. (The seccomp deny list refuses the
 * keyring calls to begin with; this holds where an operator turned it off.)
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';

/** The uids /proc/key-users lists (the kernel holds at least one key each owns). */
export function keyHolders(keyUsers: string): Set<number> {
  const out = new Set<number>();
  for (const line of keyUsers.split('\n')) {
    const m = /^\s*(\d+):/.exec(line);
    if (m) out.add(Number(m[1]));
  }
  return out;
}

function readKeyUsers(): string {
  try {
    return fs.readFileSync('/proc/key-users', 'utf8');
  } catch {
    return ''; // a kernel without keys keeps none
  }
}

export interface KeyCleaner {
  /** The uids the kernel holds keys for, now. */
  holders(): Set<number>;
  /** Invalidate what the kernel keeps for `uid`; true once it holds no key of it. */
  clear(uid: number): Promise<boolean>;
}

/** Clearing through raysub-init; without it nothing can be cleared (a uid with keys is kept out). */
export function keyCleaner(init: string | null): KeyCleaner {
  return {
    holders: () => keyHolders(readKeyUsers()),
    clear: (uid) =>
      new Promise((resolve) => {
        if (!init) return resolve(false);
        execFile(init, ['--clear-keys', String(uid)], { timeout: 10_000 }, (err) => resolve(err === null));
      }),
  };
}
