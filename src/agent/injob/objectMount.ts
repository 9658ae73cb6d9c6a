/**
 * The shared-memory store's own tmpfs. Where the agent runs as root on a kernel with transparent
 * huge pages for tmpfs, it mounts a private tmpfs with `huge=within_size` on its store directory:
 * a large object's file is then made of 2 MiB pages (a file's part that fills whole huge pages),
 * not 4 KiB ones, so writing it costs one page fault or allocation per 2 MiB instead of 512 and
 * each reader maps it with one page-table entry per 2 MiB. On a virtual machine where a page
 * fault traps to the hypervisor this is most of an object's cost (80 MB written into a 4 KiB-page
 * tmpfs: 32-42 ms; into the huge-page one: 6.5-10 ms; mapped and summed: 12-28 ms against 2.8 ms).
 * Small objects (under 2 MiB) keep 4 KiB pages (`within_size`). The mount has the capacity the
 * tmpfs it is made in had free, so nothing changes in what fits; it is `nosuid,nodev,noexec`. A
 * store directory given on a disk is left alone (mounting memory there would change what it is).
 * Anything else (not root, no huge pages for tmpfs, `mount` missing or refused) keeps the plain
 * directory, as before.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const SHMEM_THP = '/sys/kernel/mm/transparent_hugepage/shmem_enabled';
const TMPFS_MAGIC = 0x01021994;

/** Whether this kernel gives tmpfs mounts huge pages when asked (`huge=` is honoured: not `deny`). */
export function tmpfsHugePages(): boolean {
  try {
    const s = fs.readFileSync(SHMEM_THP, 'utf8');
    return !s.includes('[deny]');
  } catch {
    return false;
  }
}

/** Whether `p` is the root of a mount (its device differs from its parent's). */
export function isMountPoint(p: string): boolean {
  const st = fs.lstatSync(p, { throwIfNoEntry: false });
  const up = fs.lstatSync(path.dirname(p), { throwIfNoEntry: false });
  return st !== undefined && up !== undefined && st.isDirectory() && st.dev !== up.dev;
}

/**
 * Mount a private huge-page tmpfs on the empty directory `dir` (mode 0711), of the size the tmpfs
 * `dir` is in has free: null when done, else why not (the directory is then left as it was). Only
 * in a tmpfs: a store directory given on a disk stays on that disk, never turned into memory.
 */
export function mountHugeTmpfs(dir: string): string | null {
  if (process.platform !== 'linux' || process.getuid?.() !== 0) return 'the agent is not root';
  if (!tmpfsHugePages()) return 'this kernel gives tmpfs no huge pages';
  const st = fs.statfsSync(dir);
  if (st.type !== TMPFS_MAGIC) return 'the directory given is not in a tmpfs';
  const bytes = st.bavail * st.bsize;
  const size = Math.max(1024 * 1024, Math.floor(bytes / 4096) * 4096);
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size},huge=within_size,mode=0711,nosuid,nodev,noexec`, 'raysub-objects', dir], { encoding: 'utf8', timeout: 10_000, stdio: ['ignore', 'ignore', 'pipe'] });
  if (r.error) return `mount: ${r.error.message}`;
  if (r.status !== 0) return `mount: ${(r.stderr || `exit ${r.status}`).trim()}`;
  if (!isMountPoint(dir)) return 'mount reported success but the directory is not a mount';
  return null;
}

/**
 * Detach the tmpfs mounted on `dir` if there is one (lazily: mappings of its files and sandboxes
 * binding its directories keep their pages until they go). False when it stays mounted.
 */
export function unmountStore(dir: string): boolean {
  try {
    if (!isMountPoint(dir)) return true;
  } catch {
    return true;
  }
  const r = spawnSync('umount', ['-l', dir], { timeout: 10_000, stdio: 'ignore' });
  return r.status === 0 && !isMountPoint(dir);
}
