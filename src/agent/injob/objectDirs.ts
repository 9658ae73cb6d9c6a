/**
 * Where a job's object files live on this node. The node's shared-memory store is one directory
 * of this agent's in a tmpfs (`/dev/shm` unless configured), shared by its jobs up to
 * `--object-store-memory`; each job has a directory of its own in it, and one on disk in the
 * agent's work dir where objects go once the shared memory is full (spilled). Readers map either
 * read-only. Where the agent runs as root, the job's processes write their large objects into
 * its shared-memory directory themselves and the agent seals each file it takes (`seal`); else
 * only the agent writes here, counting what a job sends before a byte lands.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { OBJECT_ID_PATTERN } from '../../shared/protocol/index.js';
import type { Logger } from '../../shared/log.js';
import { mountHugeTmpfs, unmountStore } from './objectMount.js';

export type Placement = 'shm' | 'disk';

/** The node's shared memory for objects: every job's files in it count against one limit. */
export class ShmPool {
  used = 0;

  constructor(
    /** This agent's directory in the tmpfs (null: no shared memory; every object goes to disk). */
    readonly root: string | null,
    readonly limit: number,
    /** Whether `root` is the agent's own huge-page tmpfs (objectMount.ts), not a plain directory. */
    readonly ownTmpfs = false,
  ) {}

  take(bytes: number): boolean {
    if (!this.root || this.used + bytes > this.limit) return false;
    this.used += bytes;
    return true;
  }

  give(bytes: number): void {
    this.used = Math.max(0, this.used - bytes);
  }
}

/** A file in the agent's work dir naming its shared-memory directory, so the next run removes it. */
const RECORD = 'shm-store';
/** ...and one in that directory naming the work dir, so that any agent removes it once that work dir no longer claims it. */
const OWNER = '.workdir';

/**
 * Make this agent's directory in `dir` (a fresh one with a random name, mode 0711), after removing
 * the one a previous run of this agent left, and those of agents killed whose work dir is gone. No
 * shared memory (and a warning) when `dir` is not usable. `hugePages`: mount a private huge-page
 * tmpfs there where the agent can (objectMount.ts), with the capacity `dir` has free.
 */
export function openShmPool(dir: string | null, limit: number, workDir: string, log: Logger, opts: { hugePages?: boolean } = {}): ShmPool {
  const record = path.join(workDir, RECORD);
  removeOwnDir(readRecord(record), dir);
  if (!dir || limit <= 0) return new ShmPool(null, 0);
  sweepOrphans(dir);
  const root = path.join(path.resolve(dir), `raysub-${crypto.randomBytes(8).toString('hex')}`);
  try {
    // Claimed by the work dir first: an agent sweeping meanwhile never takes it for an orphan.
    fs.mkdirSync(workDir, { recursive: true });
    fs.writeFileSync(record, root);
    fs.mkdirSync(root, { mode: 0o711 });
    fs.chmodSync(root, 0o711);
    let ownTmpfs = false;
    if (opts.hugePages) {
      const why = mountHugeTmpfs(root);
      if (why) log.info({ dir: root, why }, 'object store: no huge-page tmpfs of its own; 4 KiB pages of the directory given');
      ownTmpfs = why === null;
    }
    fs.writeFileSync(path.join(root, OWNER), path.resolve(workDir), { mode: 0o600 });
    const st = fs.statfsSync(root);
    const pool = new ShmPool(root, Math.min(limit, st.bavail * st.bsize), ownTmpfs);
    log.info({ dir: root, bytes: pool.limit, hugePages: ownTmpfs }, 'shared-memory object store ready');
    return pool;
  } catch (err) {
    log.warn({ err: (err as Error).message, dir }, 'no shared-memory object store: objects go to the work dir on disk');
    try {
      if (ownDir(root)) removeStoreDir(root); // its mount too, now rather than at the next run
    } catch {
      // left for the next run (the work dir names it)
    }
    return new ShmPool(null, 0);
  }
}

function readRecord(file: string): string | null {
  try {
    return fs.readFileSync(file, 'utf8').trim() || null;
  } catch {
    return null;
  }
}

/** Remove a directory a previous run made, only if it is one: directly in `dir`, ours, not a link. */
function removeOwnDir(p: string | null, dir: string | null): void {
  if (!p || !dir || path.dirname(p) !== path.resolve(dir) || !path.basename(p).startsWith('raysub-')) return;
  if (ownDir(p)) removeStoreDir(p);
}

/** Remove a store directory, unmounting its own tmpfs first (what a mount that stays holds is emptied). */
function removeStoreDir(p: string): void {
  if (unmountStore(p)) return fs.rmSync(p, { recursive: true, force: true });
  for (const name of fs.readdirSync(p)) fs.rmSync(path.join(p, name), { recursive: true, force: true });
}

function ownDir(p: string): boolean {
  const st = fs.lstatSync(p, { throwIfNoEntry: false });
  return st !== undefined && st.isDirectory() && st.uid === process.getuid?.();
}

/** Directories of this uid's agents in `dir` that no work dir claims any more (their agent was killed, its work dir removed). */
function sweepOrphans(dir: string): void {
  let names: string[];
  try {
    names = fs.readdirSync(dir).filter((n) => n.startsWith('raysub-'));
  } catch {
    return;
  }
  for (const name of names) {
    const p = path.join(dir, name);
    try {
      // Only a directory of this uid is read (another user's could hold a FIFO where the claim should be).
      if (!ownDir(p) || !fs.lstatSync(path.join(p, OWNER), { throwIfNoEntry: false })?.isFile()) continue;
      const owner = readRecord(path.join(p, OWNER));
      if (owner && readRecord(path.join(owner, RECORD)) !== p) removeOwnDir(p, dir);
    } catch {
      // removed meanwhile, or not readable: left alone
    }
  }
}

/** Remove the pool's directory (the agent is closing). */
export function closeShmPool(pool: ShmPool, workDir: string): void {
  if (!pool.root) return;
  if (fs.existsSync(pool.root)) removeStoreDir(pool.root);
  fs.rmSync(path.join(workDir, RECORD), { force: true });
}

/** One job's object directories on this node and where each of its files is. */
export class JobObjectDirs {
  readonly shm: string | null;
  /**
   * The shared-memory directory where the job's processes write their large objects themselves
   * (sealed by the agent), or null: only where the agent runs as root, so that it can make each
   * file it takes its own and read-only (the directory is sticky: the job cannot then move it).
   */
  readonly direct: string | null;
  private readonly placed = new Map<string, { where: Placement; size: number }>();

  constructor(
    readonly disk: string,
    /** The job's name in the pool (its directory there). */
    name: string,
    private readonly pool: ShmPool,
  ) {
    fs.mkdirSync(disk, { recursive: true, mode: 0o711 });
    let shm: string | null = null;
    if (pool.root) {
      shm = path.join(pool.root, name);
      try {
        fs.rmSync(shm, { recursive: true, force: true });
        fs.mkdirSync(shm, { mode: 0o711 });
        // Written by the job's own uids, unlisted, each file removable only by its owner.
        if (process.getuid?.() === 0) fs.chmodSync(shm, 0o1733);
      } catch {
        shm = null; // the shared memory is gone (removed under the agent): this job's objects go to disk
      }
    }
    this.shm = shm;
    this.direct = shm && process.getuid?.() === 0 ? shm : null;
  }

  /** Directories the job's sandboxes must see (read-only). */
  get paths(): string[] {
    return this.shm ? [this.shm, this.disk] : [this.disk];
  }

  /** Where a new file of `size` bytes for `id` goes: shared memory while the node's share allows, else disk. */
  place(id: string, size: number): string {
    this.forget(id);
    const where: Placement = this.shm && this.pool.take(size) ? 'shm' : 'disk';
    this.placed.set(id, { where, size });
    return this.path(id);
  }

  /** Where `id`'s file is (or would be, on disk, when it has none here). */
  path(id: string): string {
    const where = this.placed.get(id)?.where ?? 'disk';
    return objectPath(where === 'shm' && this.shm ? this.shm : this.disk, id);
  }

  where(id: string): Placement | null {
    return this.placed.get(id)?.where ?? null;
  }

  has(id: string): boolean {
    return this.placed.has(id);
  }

  /**
   * Take the file a process of the job wrote itself as object `id`: a regular file of `size` bytes
   * at the id's name. It is made the agent's and read-only through a descriptor (so the file sealed
   * is the file checked), and the name must still hold it then. In shared memory while the node's
   * share allows, else moved to disk. Throws why not.
   */
  seal(id: string, size: number): Placement {
    if (!this.direct) throw new Error('processes of this job do not write objects themselves');
    const p = objectPath(this.direct, id);
    const c = fs.constants;
    const fd = fs.openSync(p, c.O_RDONLY | c.O_NOFOLLOW | c.O_NONBLOCK);
    try {
      const st = fs.fstatSync(fd);
      if (!st.isFile() || st.nlink !== 1) throw new Error('it is not a regular file');
      if (st.size !== size) throw new Error(`it holds ${st.size} bytes, not ${size}`);
      fs.fchownSync(fd, 0, 0);
      fs.fchmodSync(fd, 0o444);
      const now = fs.lstatSync(p);
      if (now.ino !== st.ino || now.dev !== st.dev) throw new Error('it was replaced while it was taken');
    } finally {
      fs.closeSync(fd);
    }
    this.forget(id);
    if (this.pool.take(size)) {
      this.placed.set(id, { where: 'shm', size });
      return 'shm';
    }
    // Past the node's share: spilled to disk.
    fs.copyFileSync(p, objectPath(this.disk, id));
    fs.rmSync(p, { force: true });
    this.placed.set(id, { where: 'disk', size });
    return 'disk';
  }

  /** Remove what a process wrote at `id`'s name that is not (or could not be) an object here. */
  discard(id: string): void {
    if (!this.direct || this.placed.has(id)) return;
    try {
      fs.rmSync(objectPath(this.direct, id), { force: true, recursive: true });
    } catch {
      // left for the job's end
    }
  }

  /** `id`'s file is gone (or never came): its shared memory goes back. */
  forget(id: string): void {
    const p = this.placed.get(id);
    if (!p) return;
    this.placed.delete(id);
    if (p.where === 'shm') this.pool.give(p.size);
  }

  /** Remove `id`'s file. */
  unlink(id: string): void {
    if (!this.placed.has(id)) return;
    fs.rmSync(this.path(id), { force: true });
    this.forget(id);
  }

  remove(): void {
    for (const id of [...this.placed.keys()]) this.forget(id);
    if (this.shm) fs.rmSync(this.shm, { recursive: true, force: true });
    fs.rmSync(this.disk, { recursive: true, force: true });
  }
}

/**
 * `dir/id`, for an id that passed its schema; checked again after resolution, so no id can name a
 * file outside `dir` whatever reached this far.
 */
export function objectPath(dir: string, id: string): string {
  if (!OBJECT_ID_PATTERN.test(id)) throw new Error(`invalid object id ${JSON.stringify(id.slice(0, 80))}`);
  const root = path.resolve(dir);
  const p = path.resolve(root, id);
  if (path.dirname(p) !== root) throw new Error(`object id ${JSON.stringify(id)} names a path outside its store`);
  return p;
}
