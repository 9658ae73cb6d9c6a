/**
 * Whole-tree file operations, synchronous and iterative (a deep tree never exhausts the stack),
 * never following a symbolic link. They block: callers run them off any serving event loop
 * (the agent's file worker thread).
 */
import fs from 'node:fs';
import path from 'node:path';

/** Visit every entry below `dir` (not `dir` itself), each directory before its content. */
export function walkTree(dir: string, fn: (p: string, st: fs.Stats) => void): void {
  const stack = [dir];
  while (stack.length > 0) {
    const d = stack.pop() as string;
    for (const name of fs.readdirSync(d)) {
      const p = path.join(d, name);
      const st = fs.lstatSync(p);
      fn(p, st);
      if (st.isDirectory()) stack.push(p);
    }
  }
}

/** Drop write permission everywhere; the root stays traversable and readable by all (0555). */
export function makeTreeReadOnly(dir: string): void {
  walkTree(dir, (p, st) => {
    if (!st.isSymbolicLink()) fs.chmodSync(p, st.mode & 0o555);
  });
  fs.chmodSync(dir, 0o555);
}

const runsAsRoot = typeof process.getuid === 'function' && process.getuid() === 0;

/** Remove a tree, even one made read-only (a non-root owner must make its directories writable first). */
export function removeTreeSync(dir: string): void {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(dir);
  } catch {
    return;
  }
  if (!runsAsRoot && st.isDirectory()) {
    fs.chmodSync(dir, 0o700);
    walkTree(dir, (p, s) => {
      if (s.isDirectory()) fs.chmodSync(p, 0o700);
    });
  }
  fs.rmSync(dir, { recursive: true, force: true });
}
