/**
 * The agent's whole-tree file operations: unpacking a package, copying it into a task's
 * directory, handing a directory to a task's uid, removing a tree. They are synchronous system
 * call loops over possibly tens of thousands of entries, so they run in a worker thread (see
 * index.ts), never on the agent's event loop (except a small directory's removal or chown:
 * runSmallFileOp). None follows a symbolic link.
 */
import fs from 'node:fs';
import path from 'node:path';
import { extractArchive, inspectArchive, removeTreeSync, type ArchiveCaps, type ArchiveKind } from '../../shared/archive/index.js';
import { RaysubError } from '../../shared/errors.js';

export type FileOp =
  | { op: 'extract'; file: string; kind: ArchiveKind; dest: string; caps: ArchiveCaps }
  | { op: 'inspect'; file: string; kind: ArchiveKind; caps: ArchiveCaps }
  | { op: 'copy'; src: string; dest: string; mode: number; maxEntries: number; skipNames?: readonly string[] }
  | { op: 'chown'; dir: string; uid: number; gid: number }
  | { op: 'remove'; path: string }
  | { op: 'usage'; path: string };

export interface FileOpResult {
  entries: number;
  bytes: number;
}

/** What the worker thread answers for one operation. */
export type FileOpReply =
  | { id: number; ok: true; result: FileOpResult }
  | { id: number; ok: false; error: { message: string; raysubCode: string | null; errno: string | null } };

export async function runFileOp(op: FileOp): Promise<FileOpResult> {
  switch (op.op) {
    case 'extract':
      return extractArchive(op.file, op.kind, op.dest, op.caps);
    case 'inspect': {
      const r = await inspectArchive(op.file, op.kind, op.caps);
      return { entries: r.entries, bytes: r.bytes };
    }
    case 'copy':
      return copyTree(op.src, op.dest, op.mode, op.maxEntries, new Set(op.skipNames ?? []));
    case 'chown':
      return chownTree(op.dir, op.uid, op.gid);
    case 'remove':
      removeTreeSync(op.path);
      return { entries: 0, bytes: 0 };
    case 'usage':
      return usageOf(op.path);
  }
}

/**
 * Copy `src` (an unpacked package, or a task's directory) to the new directory `dest` (mode
 * `mode`), writable by its owner: files are cloned where the file system can, links copied as
 * links, never followed; entries named in `skip` (below the top) are left out.
 */
function copyTree(src: string, dest: string, mode: number, maxEntries: number, skip: ReadonlySet<string>): FileOpResult {
  fs.mkdirSync(dest, { mode });
  fs.chmodSync(dest, mode);
  const result = { entries: 0, bytes: 0 };
  try {
    const stack: [string, string][] = [[src, dest]];
    while (stack.length > 0) {
      const [from, to] = stack.pop() as [string, string];
      for (const name of fs.readdirSync(from)) {
        if (skip.has(name)) continue;
        if (++result.entries > maxEntries) throw new RaysubError('INVALID_PACKAGE', `working dir holds more than ${maxEntries} entries`);
        const s = path.join(from, name);
        const d = path.join(to, name);
        const st = fs.lstatSync(s);
        if (st.isDirectory()) {
          fs.mkdirSync(d, { mode: 0o700 });
          fs.chmodSync(d, (st.mode & 0o777) | 0o700);
          stack.push([s, d]);
        } else if (st.isSymbolicLink()) {
          fs.symlinkSync(fs.readlinkSync(s), d);
        } else if (st.isFile()) {
          fs.copyFileSync(s, d, fs.constants.COPYFILE_EXCL | fs.constants.COPYFILE_FICLONE);
          fs.chmodSync(d, (st.mode & 0o777) | 0o200);
          result.bytes += st.size;
        }
      }
    }
    return result;
  } catch (err) {
    removeTreeSync(dest);
    throw err;
  }
}

/** The most entries a directory may hold for `runSmallFileOp` to handle it in place. */
export const SMALL_DIR_ENTRIES = 32;
/** ...and the largest file among them (unlinking a large file can take the file system a while). */
const SMALL_FILE_BYTES = 1024 * 1024;

/**
 * A `remove` or `chown` of a directory holding at most SMALL_DIR_ENTRIES files or links of at
 * most SMALL_FILE_BYTES each, and no directory: the directory of a task that wrote little, which
 * is most of them. Done at once in a few dozen system calls, which costs less than a worker thread
 * (its own V8 heap, about 12 MiB of the process's memory while it lives). Null when the tree is
 * larger, when it is not a directory, or when anything fails (a read-only directory, an entry
 * appearing meanwhile): the caller then runs the whole operation, which redoes what was done.
 */
export function runSmallFileOp(op: FileOp): FileOpResult | null {
  if (op.op !== 'remove' && op.op !== 'chown') return null;
  const dir = op.op === 'remove' ? op.path : op.dir;
  try {
    const st = fs.lstatSync(dir, { throwIfNoEntry: false });
    if (!st) return op.op === 'remove' ? { entries: 0, bytes: 0 } : null;
    if (!st.isDirectory()) return null;
    const names = fs.readdirSync(dir);
    if (names.length > SMALL_DIR_ENTRIES) return null;
    const paths = names.map((n) => path.join(dir, n));
    for (const p of paths) {
      const e = fs.lstatSync(p);
      if (e.isDirectory() || e.size > SMALL_FILE_BYTES) return null;
    }
    if (op.op === 'remove') {
      for (const p of paths) fs.unlinkSync(p);
      fs.rmdirSync(dir);
      return { entries: 0, bytes: 0 };
    }
    fs.lchownSync(dir, op.uid, op.gid);
    for (const p of paths) fs.lchownSync(p, op.uid, op.gid);
    return { entries: paths.length + 1, bytes: 0 };
  } catch {
    return null;
  }
}

/** Give a tree to `uid:gid` (lchown: links themselves, never their targets). */
function chownTree(dir: string, uid: number, gid: number): FileOpResult {
  let entries = 1;
  fs.lchownSync(dir, uid, gid);
  const stack = [dir];
  while (stack.length > 0) {
    const d = stack.pop() as string;
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      fs.lchownSync(p, uid, gid);
      entries++;
      if (e.isDirectory()) stack.push(p);
    }
  }
  return { entries, bytes: 0 };
}

/**
 * What a tree holds on disk: the blocks its files take (a sparse file counts what it wrote, not its
 * size) and its entries. Links are not followed; entries that vanish while it is walked are skipped.
 */
function usageOf(dir: string): FileOpResult {
  const result = { entries: 0, bytes: 0 };
  const top = fs.lstatSync(dir, { throwIfNoEntry: false });
  if (!top) return result;
  if (!top.isDirectory()) return { entries: 1, bytes: top.blocks * 512 };
  const stack = [dir];
  while (stack.length > 0) {
    const d = stack.pop() as string;
    let names: string[];
    try {
      names = fs.readdirSync(d);
    } catch {
      continue;
    }
    for (const name of names) {
      const p = path.join(d, name);
      const st = fs.lstatSync(p, { throwIfNoEntry: false });
      if (!st) continue;
      result.entries++;
      result.bytes += st.blocks * 512;
      if (st.isDirectory()) stack.push(p);
    }
  }
  return result;
}
