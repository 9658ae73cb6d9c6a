/**
 * The head's data directory: the one place that names its files and directories, and the modes
 * they are kept at. Only the operator's account may read anything in it (directories 0700, files
 * 0600): it holds the cluster's credentials, every job's logs and every uploaded package.
 */
import fs from 'node:fs';
import path from 'node:path';

export const PRIVATE_DIR_MODE = 0o700;
export const PRIVATE_FILE_MODE = 0o600;

export interface DataDirLayout {
  readonly root: string;
  /** SQLite database (WAL), with its `-wal` and `-shm` companions. */
  readonly db: string;
  readonly dbCompanions: readonly string[];
  /** Where the running head says it listens (url, pid): read by the CLI and `raysub stop`. */
  readonly headInfo: string;
  /** One head per data dir: holds the owner's pid. */
  readonly headLock: string;
  /** Output of a head started with `--detach`. */
  readonly headLog: string;
  /** The cluster's admin token (created on first start). */
  readonly token: string;
  /** Uploaded packages, content-addressed. */
  readonly packages: string;
  /** Job logs: `logs/<job-id>/<task-index>.log`. */
  readonly logs: string;
  /** The embedded agent's work dir. */
  readonly localAgent: string;
  /** Default work dirs of standalone agents started with this data dir: `agents/<name>`. */
  readonly agents: string;
  /** What `raysub cert create` writes by default. */
  readonly tls: string;
}

export function dataDirLayout(root: string): DataDirLayout {
  const r = path.resolve(root);
  const db = path.join(r, 'raysub.db');
  return {
    root: r,
    db,
    dbCompanions: [`${db}-wal`, `${db}-shm`],
    headInfo: path.join(r, 'head.json'),
    headLock: path.join(r, 'head.lock'),
    headLog: path.join(r, 'head.log'),
    token: path.join(r, 'token'),
    packages: path.join(r, 'packages'),
    logs: path.join(r, 'logs'),
    localAgent: path.join(r, 'agent'),
    agents: path.join(r, 'agents'),
    tls: path.join(r, 'tls'),
  };
}

/** Create `dir` (and its parents) for the operator alone; an existing one is narrowed to 0700. */
export function ensurePrivateDir(dir: string): void {
  fs.mkdirSync(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
  narrow(dir, PRIVATE_DIR_MODE);
}

/** Narrow an existing file or directory to `mode` (a data dir made by an older version was 0644/0755). */
export function narrow(p: string, mode: number): void {
  try {
    const st = fs.lstatSync(p);
    if (st.isSymbolicLink()) return;
    if ((st.mode & 0o777 & ~mode) !== 0) fs.chmodSync(p, st.mode & 0o777 & mode);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

/** Write `content` to `file` atomically, readable by its owner only. */
export function writePrivateFile(file: string, content: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    fs.writeFileSync(tmp, content, { mode: PRIVATE_FILE_MODE, flag: 'w' });
    fs.chmodSync(tmp, PRIVATE_FILE_MODE);
    fs.renameSync(tmp, file);
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}

/**
 * Prepare a head's data dir: the root and its directories 0700, and what an older version left
 * readable (the database and its companions, logs, packages, head files) narrowed to 0600/0700.
 */
export function preparePrivateDataDir(layout: DataDirLayout): void {
  ensurePrivateDir(layout.root);
  for (const [dir, depth] of [[layout.logs, 2], [layout.packages, 1]] as const) {
    // Walk the tree only the first time (it was made by an older version when it is not 0700 yet).
    const older = isLooserThan(dir, PRIVATE_DIR_MODE);
    ensurePrivateDir(dir);
    if (older) narrowTree(dir, depth);
  }
  for (const file of [layout.db, ...layout.dbCompanions, layout.headInfo, layout.headLock, layout.headLog, layout.token]) narrow(file, PRIVATE_FILE_MODE);
}

function isLooserThan(p: string, mode: number): boolean {
  try {
    return (fs.lstatSync(p).mode & 0o777 & ~mode) !== 0;
  } catch {
    return false;
  }
}

/** Narrow a shallow tree (job log directories and their files, package files) left by an older version. */
function narrowTree(dir: string, depth: number): void {
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of entries) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) {
      narrow(p, PRIVATE_DIR_MODE);
      if (depth > 1) narrowTree(p, depth - 1);
    } else if (e.isFile()) {
      narrow(p, PRIVATE_FILE_MODE);
    }
  }
}

/** Create the SQLite file for its owner alone before SQLite opens it (its -wal and -shm copy its mode). */
export function createPrivateFile(file: string): void {
  fs.closeSync(fs.openSync(file, fs.constants.O_CREAT | fs.constants.O_WRONLY | fs.constants.O_NOFOLLOW, PRIVATE_FILE_MODE));
  narrow(file, PRIVATE_FILE_MODE);
}
