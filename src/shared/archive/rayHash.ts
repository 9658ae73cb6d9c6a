/**
 * Ray's content hash, as `ray._private.runtime_env.packaging` names a directory or a module file
 * (`_ray_pkg_<16 hex>.zip`): for every path it packs — the directory itself as ".", each
 * directory below it, each file — the first 8 bytes of SHA-1(relative path, then the file's
 * bytes), XORed together into an accumulator that starts as eight ASCII "0"s. A single file is
 * SHA-1(name, bytes) XOR "00000000". A py_modules directory is zipped with its own name in front
 * of every path but hashed without it.
 *
 * Ray packs files and empty directories only; the directories in between are implied by the
 * paths, so they are recomputed here. What the zip cannot tell — a directory Ray hashed whose
 * every file its ignore rules left out — makes an honest package fail this check.
 */
import crypto from 'node:crypto';
import { pathOf, type PackageTree, type TreeNode } from './tree.js';

export interface RayFileHashes {
  /** SHA-1 of the path from the root, then the content. */
  full: Buffer;
  /** The same with the first component left out (for a py_modules directory), if there is one. */
  stripped: Buffer | null;
}

const START = Buffer.alloc(8, 0x30);

function sha1(...parts: string[]): Buffer {
  const h = crypto.createHash('sha1');
  for (const p of parts) h.update(p);
  return h.digest();
}

function xorInto(acc: Buffer, value: Buffer): void {
  for (let i = 0; i < 8; i++) acc[i] = (acc[i] as number) ^ (value[i] as number);
}

/** The hex hashes Ray could have named this tree by; empty when the tree is not one Ray makes. */
export function rayContentHashes(tree: PackageTree, files: Map<TreeNode, RayFileHashes>): string[] {
  if (tree.hardlinks.length > 0) return [];
  const nodes = [...tree.walk()];
  const out: string[] = [];

  const asDir = Buffer.from(START);
  xorInto(asDir, sha1('.'));
  for (const node of nodes) xorInto(asDir, hashOf(node, pathOf(node), files.get(node)?.full));
  out.push(asDir.toString('hex'));

  const top = tree.root.children?.size === 1 ? [...(tree.root.children?.values() ?? [])][0] : undefined;
  if (top?.type === 'dir') {
    const asModule = Buffer.from(START);
    xorInto(asModule, sha1('.'));
    for (const node of nodes) {
      if (node === top) continue;
      const path = pathOf(node);
      xorInto(asModule, hashOf(node, path.slice(path.indexOf('/') + 1), files.get(node)?.stripped ?? undefined));
    }
    out.push(asModule.toString('hex'));
  }
  if (top?.type === 'file' && nodes.length === 1) {
    const asFile = Buffer.from(START);
    xorInto(asFile, files.get(top)?.full ?? sha1(top.name));
    out.push(asFile.toString('hex'));
  }
  return out;
}

function hashOf(node: TreeNode, path: string, content: Buffer | undefined): Buffer {
  if (node.type === 'dir') return sha1(path);
  if (node.type === 'symlink') return sha1(path, node.target ?? '');
  return content ?? sha1(path);
}
