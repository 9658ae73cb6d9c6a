/**
 * The checked model of a package's tree, built entry by entry before anything is written (or
 * instead of writing, on the head). It refuses what could steer an extraction: absolute paths,
 * `..`, NUL, an entry under a link or a file, an entry that names a path twice, hard links to
 * anything but a regular file earlier in the package, and — once every entry is known — a
 * symbolic link that resolves outside the tree, following links inside the tree the way the
 * kernel would on disk (not lexically).
 */
import {
  invalid,
  MAX_DEPTH,
  MAX_LINK_BYTES,
  MAX_LINK_HOPS,
  MAX_LINK_STEPS,
  MAX_NAME_BYTES,
  MAX_PATH_BYTES,
  overBytes,
  overEntries,
  shown,
  type ArchiveCaps,
} from './caps.js';

export type EntryType = 'file' | 'dir' | 'symlink' | 'hardlink';

/** One entry as an archive declares it. */
export interface ArchiveEntry {
  path: string;
  type: EntryType;
  /** Declared content bytes (files only). */
  size: number;
  linkpath?: string;
  mode?: number;
}

export interface TreeNode {
  type: 'file' | 'dir' | 'symlink';
  /** The last component of the entry's path ('' for the root). */
  name: string;
  parent: TreeNode | null;
  children?: Map<string, TreeNode>;
  /** Symbolic links: the target as written; hard links: the node they name. */
  target?: string;
  linkOf?: TreeNode;
  size: number;
  executable: boolean;
  /** Implied by a deeper entry, not declared itself. */
  implicit: boolean;
}

/** An entry's path as components: no NUL, not absolute, no `..`; `.` and empty parts dropped. */
export function entryParts(raw: string): string[] {
  if (raw.includes('\0')) throw invalid(`entry ${shown(raw)} has a NUL byte in its name`);
  if (raw.startsWith('/') || raw.startsWith('\\') || /^[A-Za-z]:[\\/]/.test(raw)) throw invalid(`entry ${shown(raw)} has an absolute path`);
  if (Buffer.byteLength(raw) > MAX_PATH_BYTES) throw invalid(`entry ${shown(raw)} has a path longer than ${MAX_PATH_BYTES} bytes`);
  const parts = raw.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) throw invalid(`entry ${shown(raw)} has a ".." component`);
  if (parts.length > MAX_DEPTH) throw invalid(`entry ${shown(raw)} is nested deeper than ${MAX_DEPTH} directories`);
  for (const p of parts) if (Buffer.byteLength(p) > MAX_NAME_BYTES) throw invalid(`entry ${shown(raw)} has a name longer than ${MAX_NAME_BYTES} bytes`);
  return parts;
}

function checkLinkText(entry: ArchiveEntry): string {
  const target = entry.linkpath ?? '';
  if (target === '') throw invalid(`link ${shown(entry.path)} has an empty target`);
  if (target.includes('\0')) throw invalid(`link ${shown(entry.path)} has a NUL byte in its target`);
  if (Buffer.byteLength(target) > MAX_LINK_BYTES) throw invalid(`link ${shown(entry.path)} has a target longer than ${MAX_LINK_BYTES} bytes`);
  if (target.startsWith('/')) throw invalid(`link ${shown(entry.path)} points to an absolute path ${shown(target)}`);
  return target;
}

const MISSING: TreeNode = { type: 'dir', name: '', parent: null, size: 0, executable: false, implicit: true };

/** A node's path components from the root. */
export function partsOf(node: TreeNode): string[] {
  const parts: string[] = [];
  for (let n: TreeNode | null = node; n?.parent; n = n.parent) parts.push(n.name);
  return parts.reverse();
}

/** A node's ancestors, the root first. */
function ancestorsOf(node: TreeNode): TreeNode[] {
  const chain: TreeNode[] = [];
  for (let n = node.parent; n; n = n.parent) chain.push(n);
  return chain.reverse();
}

export function pathOf(node: TreeNode): string {
  return partsOf(node).join('/');
}

export class PackageTree {
  readonly root: TreeNode = { type: 'dir', name: '', parent: null, children: new Map(), size: 0, executable: false, implicit: false };
  /** Inodes the package creates (entries, implied directories included). */
  entries = 0;
  /** Declared content bytes, hard links counted once per name (each name is copied into task dirs). */
  declaredBytes = 0;
  /** Content bytes actually read out of the archive. */
  writtenBytes = 0;
  readonly symlinks: TreeNode[] = [];
  readonly hardlinks: TreeNode[] = [];

  constructor(private readonly caps: ArchiveCaps) {}

  private count(): void {
    if (++this.entries > this.caps.maxEntries) throw overEntries(this.caps);
  }

  /** Content bytes read for a file; refuses the package past the cap, whatever was declared. */
  wrote(n: number): void {
    this.writtenBytes += n;
    if (this.writtenBytes > this.caps.maxBytes) throw overBytes(this.caps);
  }

  /** Check and record one entry; returns its node, or null for the root directory itself. */
  add(entry: ArchiveEntry): TreeNode | null {
    const parts = entryParts(entry.path);
    if (parts.length === 0) {
      if (entry.type === 'dir') return null;
      throw invalid(`entry ${shown(entry.path)} names the package's root as a ${entry.type}`);
    }
    let dir = this.root;
    for (let i = 0; i < parts.length - 1; i++) {
      const name = parts[i] as string;
      let next = dir.children?.get(name);
      if (!next) {
        this.count();
        next = { type: 'dir', name, parent: dir, children: new Map(), size: 0, executable: false, implicit: true };
        dir.children?.set(name, next);
      } else if (next.type !== 'dir') {
        throw invalid(`entry ${shown(entry.path)} lies under ${next.type === 'symlink' ? 'the link' : 'the file'} ${shown(parts.slice(0, i + 1).join('/'))}`);
      }
      dir = next;
    }
    const name = parts[parts.length - 1] as string;
    const existing = dir.children?.get(name);
    if (existing) {
      if (existing.type === 'dir' && entry.type === 'dir') {
        existing.implicit = false;
        return existing;
      }
      const what = existing.type === 'symlink' ? 'a link' : existing.type === 'dir' ? 'a directory' : 'a file';
      throw invalid(`entry ${shown(entry.path)} appears twice in the package (it would replace ${what})`);
    }
    this.count();
    const node: TreeNode = { type: entry.type === 'hardlink' ? 'file' : entry.type, name, parent: dir, size: 0, executable: Boolean((entry.mode ?? 0) & 0o111), implicit: false };
    if (entry.type === 'dir') node.children = new Map();
    else if (entry.type === 'file') node.size = entry.size;
    else if (entry.type === 'symlink') {
      node.target = checkLinkText(entry);
      this.symlinks.push(node);
    } else {
      const target = this.hardlinkTarget(entry);
      node.linkOf = target;
      node.size = target.size;
      node.executable = target.executable;
      this.hardlinks.push(node);
    }
    this.declaredBytes += node.size;
    if (this.declaredBytes > this.caps.maxBytes) throw overBytes(this.caps);
    dir.children?.set(name, node);
    return node;
  }

  /** A hard link may only name a regular file that came earlier, by a path through directories. */
  private hardlinkTarget(entry: ArchiveEntry): TreeNode {
    const text = checkLinkText(entry);
    let parts: string[];
    try {
      parts = entryParts(text);
    } catch {
      throw invalid(`hard link ${shown(entry.path)} points outside the package (${shown(text)})`);
    }
    let node: TreeNode | undefined = this.root;
    for (const p of parts) {
      if (node?.type !== 'dir') break;
      node = node.children?.get(p);
    }
    if (!node || node.type !== 'file' || node.linkOf || parts.length === 0) {
      throw invalid(`hard link ${shown(entry.path)} points to ${shown(text)}, which is not a regular file earlier in the package`);
    }
    return node;
  }

  /**
   * Check every symbolic link against the whole tree: following links as the kernel would, no
   * resolution may step above the package's root. A component the tree lacks is taken as a
   * directory, so a dangling link is judged by the most it could reach.
   */
  finish(): void {
    let steps = 0;
    for (const link of this.symlinks) {
      const chain = ancestorsOf(link);
      const queue = (link.target ?? '').split('/').filter((p) => p !== '' && p !== '.');
      let hops = 0;
      while (queue.length > 0) {
        if (++steps > MAX_LINK_STEPS) throw invalid('package links are too tangled to check');
        const c = queue.shift() as string;
        if (c === '..') {
          if (chain.length === 1) throw invalid(`link ${shown(pathOf(link))} -> ${shown(link.target ?? '')} resolves outside the package`);
          chain.pop();
          continue;
        }
        const here = chain[chain.length - 1] as TreeNode;
        const child = here === MISSING ? undefined : here.children?.get(c);
        if (child?.type === 'symlink') {
          if (++hops > MAX_LINK_HOPS) throw invalid(`link ${shown(pathOf(link))} goes through more than ${MAX_LINK_HOPS} links`);
          queue.unshift(...(child.target ?? '').split('/').filter((p) => p !== '' && p !== '.'));
          continue;
        }
        // A file met before the end, or a name the tree lacks: from here on, judged lexically.
        chain.push(child && child.type === 'dir' ? child : MISSING);
      }
    }
  }

  /** Every node, parents before children (iterative: a deep tree never exhausts the stack). */
  *walk(): Generator<TreeNode> {
    const stack: TreeNode[] = [this.root];
    while (stack.length > 0) {
      const node = stack.pop() as TreeNode;
      if (node !== this.root) yield node;
      if (node.children) for (const child of node.children.values()) stack.push(child);
    }
  }
}
