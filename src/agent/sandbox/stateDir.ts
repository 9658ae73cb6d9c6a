/**
 * Where the agent keeps its sandboxes' own files: each task's passwd, group, start file and binds
 * file, and a served sandbox's FIFOs — small files rewritten for every task. On a tmpfs they cost
 * the agent a few system calls; on a disk's file system every rewrite can wait for its journal
 * while other processes write (about 1 ms a file on a busy machine). So the directory is on
 * /dev/shm where that is a tmpfs: one per work dir and uid (`raysub-sandbox-<hash>-<uid>`, the
 * hash of the work dir's real path), private to the agent (0700), removed and made again when an
 * agent starts on that work dir. A directory of that name that is not the agent's own (a symlink,
 * another owner, another mode: anyone may create names in /dev/shm) is never used nor removed: the
 * agent falls back to `<work dir>/sandbox`, as where /dev/shm is no tmpfs. The agent removes it
 * when it closes; one a killed agent left is removed by the next agent starting on that work dir,
 * or by any agent of the same uid once that work dir is gone (the directory names it in OWNER).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

/** statfs f_type of a tmpfs. */
const TMPFS_MAGIC = 0x01021994;
const PREFIX = 'raysub-sandbox-';
/** The file in the directory naming its work dir (not the object store's `.workdir`: its sweep must leave this one alone). */
const OWNER = '.agent-workdir';

export interface StateDirOptions {
  /** The directory to put it in when that is a tmpfs (tests give their own). */
  shm?: string;
  /** The uid that must own it (the agent's). */
  uid?: number;
}

/** The tmpfs directory the agent with `workDir` would use, if it may (the name alone). */
export function shmStateDir(workDir: string, o: StateDirOptions = {}): string {
  let real = path.resolve(workDir);
  try {
    real = fs.realpathSync(real);
  } catch {
    // not made yet: its resolved path names it
  }
  const hash = crypto.createHash('sha256').update(real).digest('hex').slice(0, 16);
  return path.join(o.shm ?? '/dev/shm', `${PREFIX}${hash}-${o.uid ?? process.getuid?.() ?? 0}`);
}

function isTmpfs(dir: string): boolean {
  try {
    return fs.lstatSync(dir).isDirectory() && fs.statfsSync(dir).type === TMPFS_MAGIC;
  } catch {
    return false;
  }
}

/** Whether `p` is a directory of `uid`'s alone (not a symlink, mode 0700). */
function ownPrivateDir(p: string, uid: number): boolean {
  const st = fs.lstatSync(p);
  return st.isDirectory() && st.uid === uid && (st.mode & 0o777) === 0o700;
}

/**
 * Make the agent's sandbox state directory, empty: on the tmpfs where it may (see above), else
 * `<workDir>/sandbox`. Returns its path.
 */
export function openStateDir(workDir: string, o: StateDirOptions = {}): string {
  const uid = o.uid ?? process.getuid?.() ?? 0;
  const fallback = path.join(workDir, 'sandbox');
  fs.rmSync(fallback, { recursive: true, force: true });
  // The work dir exists before its state directory names it: any agent's sweep removes one whose work dir is gone.
  fs.mkdirSync(workDir, { recursive: true });
  const shm = o.shm ?? '/dev/shm';
  if (isTmpfs(shm)) {
    const dir = shmStateDir(workDir, { shm, uid });
    try {
      // Its own previous run's (a sticky /dev/shm lets no one else remove or replace it); anything else is left alone.
      if (fs.existsSync(dir) || isSymlink(dir)) {
        if (!ownPrivateDir(dir, uid)) throw new Error('not ours');
        fs.rmSync(dir, { recursive: true, force: true });
      }
      sweepOrphans(shm, uid);
      fs.mkdirSync(dir, { mode: 0o700 });
      if (ownPrivateDir(dir, uid)) {
        fs.writeFileSync(path.join(dir, OWNER), path.resolve(workDir), { mode: 0o600 });
        return dir;
      }
    } catch {
      // taken by someone else, or /dev/shm refuses: the work dir it is
    }
  }
  fs.mkdirSync(fallback, { recursive: true, mode: 0o700 });
  return fallback;
}

/** State directories of this uid's agents whose work dir is gone (the agent was killed, its work dir removed). */
function sweepOrphans(shm: string, uid: number): void {
  let names: string[];
  try {
    names = fs.readdirSync(shm).filter((n) => n.startsWith(PREFIX) && n.endsWith(`-${uid}`));
  } catch {
    return;
  }
  for (const name of names) {
    const p = path.join(shm, name);
    try {
      if (!ownPrivateDir(p, uid) || !fs.lstatSync(path.join(p, OWNER)).isFile()) continue;
      const workDir = fs.readFileSync(path.join(p, OWNER), 'utf8');
      if (workDir.startsWith('/') && !fs.existsSync(workDir)) fs.rmSync(p, { recursive: true, force: true });
    } catch {
      // removed meanwhile, or not readable: left alone
    }
  }
}

function isSymlink(p: string): boolean {
  try {
    return fs.lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}

/** Remove the state directory when the agent ends (its tasks are gone; a crash leaves it to the next start on the work dir). */
export function removeStateDir(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
}
