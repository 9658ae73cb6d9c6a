/** Small filesystem operations the env caches need: sizes, read-only trees, atomic writes. */
import fs from 'node:fs';
import path from 'node:path';

function walk(dir: string, fn: (p: string, st: fs.Stats) => void): void {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return;
  }
  for (const name of names) {
    const p = path.join(dir, name);
    const st = fs.lstatSync(p);
    if (st.isDirectory()) walk(p, fn);
    fn(p, st);
  }
}

/** Bytes a tree takes (links are counted as themselves, never followed). */
export function treeSize(dir: string): number {
  let total = 0;
  walk(dir, (_p, st) => (total += st.isDirectory() ? 0 : st.size));
  return total;
}

/** Drop write permission everywhere in a tree, so a cached env cannot be changed by accident. */
export function makeTreeReadOnly(dir: string): void {
  walk(dir, (p, st) => {
    if (!st.isSymbolicLink()) fs.chmodSync(p, st.mode & ~0o222);
  });
  fs.chmodSync(dir, fs.statSync(dir).mode & ~0o222);
}

/** Remove a tree even where it was made read-only (needed when the agent does not run as root). */
export async function removeTree(dir: string): Promise<void> {
  try {
    fs.chmodSync(dir, 0o755);
  } catch {
    return; // already gone
  }
  walk(dir, (p, st) => {
    if (st.isDirectory()) fs.chmodSync(p, 0o755);
  });
  await fs.promises.rm(dir, { recursive: true, force: true });
}

export function removeTreeSync(dir: string): void {
  if (!fs.existsSync(dir)) return;
  fs.chmodSync(dir, 0o755);
  walk(dir, (p, st) => {
    if (st.isDirectory()) fs.chmodSync(p, 0o755);
  });
  fs.rmSync(dir, { recursive: true, force: true });
}

/** Write a file so that readers see the old content or the new one, never half of it. */
export function writeFileAtomic(file: string, content: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, content);
  fs.renameSync(tmp, file);
}

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
