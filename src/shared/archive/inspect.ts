/**
 * Checking a package without unpacking it (the head, at upload): every entry through the checked
 * tree and the caps, content read and counted but never kept. On request it also computes what
 * a name may be checked against: Ray's content hash, and a digest of the content that does not
 * depend on how the archive was written (order, timestamps, compression).
 */
import crypto from 'node:crypto';
import type { ArchiveCaps } from './caps.js';
import { rayContentHashes, type RayFileHashes } from './rayHash.js';
import { readArchive, type ArchiveKind } from './read.js';
import { PackageTree, pathOf, type TreeNode } from './tree.js';

export interface InspectOptions {
  /** Compute the `_ray_pkg_<16 hex>` names this content may carry. */
  rayHash?: boolean;
  /** Compute the content digest. */
  digest?: boolean;
}

export interface Inspection {
  entries: number;
  bytes: number;
  /** Hex hashes Ray would name this content by (as a directory, a module dir with its parent, a file). */
  rayHashes: string[];
  /** SHA-256 over the sorted (path, kind, executable bit, content hash or link target) of every entry. */
  digest: string | null;
}

export async function inspectArchive(file: string, kind: ArchiveKind, caps: ArchiveCaps, opts: InspectOptions = {}): Promise<Inspection> {
  const tree = new PackageTree(caps);
  const ray = new Map<TreeNode, RayFileHashes>();
  const sha256s = new Map<TreeNode, string>();
  await readArchive(file, kind, caps, (entry) => {
    const node = tree.add(entry);
    if (!node || node.type !== 'file' || node.linkOf) return null;
    const path = opts.rayHash ? pathOf(node) : '';
    const slash = path.indexOf('/');
    const full = opts.rayHash ? crypto.createHash('sha1').update(path) : null;
    const stripped = opts.rayHash && slash >= 0 ? crypto.createHash('sha1').update(path.slice(slash + 1)) : null;
    const content = opts.digest ? crypto.createHash('sha256') : null;
    return {
      write(chunk) {
        tree.wrote(chunk.length);
        full?.update(chunk);
        stripped?.update(chunk);
        content?.update(chunk);
      },
      end() {
        if (full) ray.set(node, { full: full.digest(), stripped: stripped?.digest() ?? null });
        if (content) sha256s.set(node, content.digest('hex'));
      },
    };
  });
  tree.finish();
  return {
    entries: tree.entries,
    bytes: tree.writtenBytes,
    rayHashes: opts.rayHash ? rayContentHashes(tree, ray) : [],
    digest: opts.digest ? contentDigest(tree, sha256s) : null,
  };
}

function contentDigest(tree: PackageTree, sha256s: Map<TreeNode, string>): string {
  const lines: string[] = [];
  for (const node of tree.walk()) {
    const path = JSON.stringify(pathOf(node));
    if (node.type === 'dir') lines.push(`d ${path}`);
    else if (node.type === 'symlink') lines.push(`l ${path} ${JSON.stringify(node.target ?? '')}`);
    else lines.push(`f ${path} ${node.executable ? 'x' : '-'} ${sha256s.get(node.linkOf ?? node) ?? ''}`);
  }
  lines.sort();
  return crypto.createHash('sha256').update(lines.join('\n')).digest('hex');
}
