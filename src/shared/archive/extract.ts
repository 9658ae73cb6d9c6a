/**
 * Unpacking a package into a fresh directory so that nothing in it can steer where a byte lands:
 *
 * - every entry passes the checked tree first (paths, duplicates, entries under links, caps);
 * - directories and regular files are written first, while the tree holds no link at all: each
 *   file is created with O_CREAT|O_EXCL|O_NOFOLLOW under directories this function made;
 * - hard links and then symbolic links are created last, once every entry is known and every
 *   link's resolution inside the tree was checked; none is ever followed while unpacking;
 * - the links are then resolved on disk (realpath) and must stay inside the directory;
 * - the tree is made read-only. On any failure the directory is removed.
 *
 * The file system calls are synchronous: this runs in the agent's file worker thread, never on an
 * event loop that serves anything.
 */
import fs from 'node:fs';
import path from 'node:path';
import { invalid, shown, type ArchiveCaps } from './caps.js';
import { readArchive, type ArchiveKind } from './read.js';
import { PackageTree, partsOf, pathOf, type TreeNode } from './tree.js';
import { makeTreeReadOnly, removeTreeSync } from './treeFs.js';

export interface ExtractResult {
  entries: number;
  bytes: number;
}

const CREATE_FLAGS = fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW;

function writeAll(fd: number, chunk: Buffer): void {
  let off = 0;
  while (off < chunk.length) off += fs.writeSync(fd, chunk, off, chunk.length - off);
}

/** Unpack `file` into `dest`, which must not exist yet (its parent must). */
export async function extractArchive(file: string, kind: ArchiveKind, dest: string, caps: ArchiveCaps): Promise<ExtractResult> {
  fs.mkdirSync(dest, { mode: 0o700 });
  const made = new Set<TreeNode>();
  const abs = (node: TreeNode): string => path.join(dest, ...partsOf(node));
  const makeDir = (node: TreeNode | null): void => {
    if (!node?.parent || made.has(node)) return;
    makeDir(node.parent);
    fs.mkdirSync(abs(node), { mode: 0o755 });
    made.add(node);
  };
  const open = { fd: null as number | null };
  try {
    const tree = new PackageTree(caps);
    await readArchive(file, kind, caps, (entry) => {
      const node = tree.add(entry);
      if (!node) return null;
      makeDir(node.parent);
      if (node.type === 'dir') {
        makeDir(node);
        return null;
      }
      if (node.type === 'symlink' || node.linkOf) return null;
      const fd = fs.openSync(abs(node), CREATE_FLAGS, node.executable ? 0o755 : 0o644);
      open.fd = fd;
      return {
        write(chunk) {
          tree.wrote(chunk.length);
          writeAll(fd, chunk);
        },
        end() {
          open.fd = null;
          fs.closeSync(fd);
        },
      };
    });
    tree.finish();
    for (const link of tree.hardlinks) fs.linkSync(abs(link.linkOf as TreeNode), abs(link));
    for (const link of tree.symlinks) fs.symlinkSync(link.target ?? '', abs(link));
    checkLinksOnDisk(dest, tree);
    makeTreeReadOnly(dest);
    return { entries: tree.entries, bytes: tree.writtenBytes };
  } catch (err) {
    if (open.fd !== null) fs.closeSync(open.fd);
    removeTreeSync(dest);
    throw err;
  }
}

/** What the checked tree promised, seen by the kernel: every link that resolves, resolves inside. */
function checkLinksOnDisk(dest: string, tree: PackageTree): void {
  const root = fs.realpathSync.native(dest);
  for (const link of tree.symlinks) {
    let resolved: string;
    try {
      resolved = fs.realpathSync.native(path.join(dest, ...partsOf(link)));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') continue; // dangling: judged by the tree
      if (code === 'ELOOP') throw invalid(`link ${shown(pathOf(link))} loops`);
      throw err;
    }
    if (resolved !== root && !resolved.startsWith(root + path.sep)) {
      throw invalid(`link ${shown(pathOf(link))} -> ${shown(link.target ?? '')} resolves outside the package`);
    }
  }
}
