/**
 * The shared-memory store's own huge-page tmpfs (src/agent/injob/objectMount.ts): mounted on the
 * agent's store directory where the agent is root and the kernel gives tmpfs huge pages, with the
 * capacity the directory had free; a large object's file there is mapped with 2 MiB pages (checked
 * from a real python3 reader's /proc/self/smaps); unmounted when the pool closes, when the next run
 * of the agent removes the previous run's directory, and when another agent sweeps the directory
 * of one that was killed and whose work dir is gone.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { closeShmPool, openShmPool } from '../src/agent/injob/objectDirs.js';
import { isMountPoint, tmpfsHugePages, unmountStore } from '../src/agent/injob/objectMount.js';
import { silentLogger } from '../src/shared/log.js';
import { tempDir } from './helpers/cluster.js';

const MiB = 1024 * 1024;

/** The mount options of the mount whose root is `dir` (from /proc/self/mountinfo), or null. */
function mountOptions(dir: string): { fstype: string; options: string[] } | null {
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const [left = '', right = ''] = line.split(' - ');
    const f = left.split(' ');
    if (f[4] !== dir) continue;
    const [fstype = '', , superOpts = ''] = right.split(' ');
    return { fstype, options: [...(f[5] ?? '').split(','), ...superOpts.split(',')] };
  }
  return null;
}

function inTmpfs(dir: string): boolean {
  try {
    return fs.statfsSync(dir).type === 0x01021994;
  } catch {
    return false;
  }
}

const cannot = ((): string | null => {
  if (process.platform !== 'linux' || process.getuid?.() !== 0) return 'the store mounts a tmpfs of its own only where the agent is root (this test is not)';
  if (!tmpfsHugePages()) return 'this kernel gives tmpfs no huge pages';
  if (!inTmpfs('/dev/shm')) return '/dev/shm is not a tmpfs here';
  return null;
})();

function skipped(ctx: { skip: () => void }): boolean {
  if (!cannot) return false;
  console.log(`skipped: ${cannot}`);
  ctx.skip();
  return true;
}

/** A fresh directory in the machine's tmpfs (`/dev/shm`), removed after the test. */
function shmDir(): string {
  const dir = fs.mkdtempSync(path.join('/dev/shm', 'raysub-objmount-'));
  onTestFinished(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Open a pool that asks for its own tmpfs; whatever the test leaves mounted is unmounted after it. */
function pool(tmpfs: string, work: string) {
  const p = openShmPool(tmpfs, 64 * MiB, work, silentLogger(), { hugePages: true });
  onTestFinished(() => {
    if (p.root && fs.existsSync(p.root)) unmountStore(p.root);
  });
  return p;
}

describe("the store's own huge-page tmpfs", () => {
  it('is mounted where the agent can, nosuid/nodev/noexec, with the capacity the directory had; 4 MiB objects are mapped with huge pages', (ctx) => {
    if (skipped(ctx)) return;
    const tmpfs = shmDir();
    const work = tempDir('raysub-objmount-work-');
    const before = fs.statfsSync(tmpfs);
    const p = pool(tmpfs, work);
    const root = p.root ?? '';
    expect(p.ownTmpfs).toBe(true);
    expect(isMountPoint(root)).toBe(true);
    const m = mountOptions(root);
    expect(m?.fstype).toBe('tmpfs');
    expect(m?.options).toEqual(expect.arrayContaining(['nosuid', 'nodev', 'noexec', 'huge=within_size']));
    expect((fs.statSync(root).mode & 0o777).toString(8)).toBe('711');
    // The same capacity as the directory it is made in (to a page), so nothing changes in what fits.
    const st = fs.statfsSync(root);
    expect(Math.abs(st.blocks * st.bsize - before.bavail * before.bsize)).toBeLessThan(64 * MiB);
    expect(p.limit).toBe(64 * MiB);
    // A reader maps a 4 MiB object with 2 MiB pages (PMD-mapped shared memory in its smaps).
    const file = path.join(root, 'obj');
    const r = spawnSync('python3', ['-c', [
      'import mmap, os, sys',
      'p = sys.argv[1]',
      'fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)',
      'os.write(fd, b"x" * (4 << 20)); os.close(fd)',
      'f = open(p, "rb"); m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)',
      'assert m[(4 << 20) - 1] == ord("x")',
      'addr = None',
      'lines = open("/proc/self/smaps").read().split("\\n")',
      'mine = False',
      'for line in lines:',
      '    if line and line[0] in "0123456789abcdef" and "-" in line.split()[0]:',
      '        mine = line.rstrip().endswith(p)',
      '    elif mine and line.startswith(("ShmemPmdMapped:", "FilePmdMapped:")):',
      '        print(line)',
    ].join('\n'), file], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const pmd = r.stdout.split('\n').filter(Boolean).reduce((n, l) => n + Number(l.split(/\s+/)[1]), 0);
    expect(pmd, r.stdout).toBeGreaterThanOrEqual(2048);
    closeShmPool(p, work);
    expect(isMountPoint(root)).toBe(false);
    expect(fs.existsSync(root)).toBe(false);
    expect(fs.readdirSync(tmpfs)).toEqual([]);
  });

  it("is unmounted with the previous run's directory, and with a killed agent's whose work dir is gone", (ctx) => {
    if (skipped(ctx)) return;
    const tmpfs = shmDir();
    const work = tempDir('raysub-objmount-work-');
    const first = pool(tmpfs, work);
    fs.writeFileSync(path.join(first.root ?? '', 'left-over'), 'x');
    // The next run of the same agent: the previous run's mount goes, its directory too.
    const second = pool(tmpfs, work);
    expect(second.ownTmpfs).toBe(true);
    expect(fs.existsSync(first.root ?? '')).toBe(false);
    expect(fs.readdirSync(tmpfs)).toEqual([path.basename(second.root ?? '')]);
    // Killed (never closed), its work dir removed: another agent's start sweeps the mount away.
    fs.rmSync(work, { recursive: true, force: true });
    const other = tempDir('raysub-objmount-work-');
    const third = pool(tmpfs, other);
    expect(isMountPoint(second.root ?? '')).toBe(false);
    expect(fs.readdirSync(tmpfs)).toEqual([path.basename(third.root ?? '')]);
    closeShmPool(third, other);
    expect(fs.readdirSync(tmpfs)).toEqual([]);
    expect(fs.readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(tmpfs);
  });

  it.each([
    ['without huge pages asked for', false, () => tempDir('raysub-objmount-shm-')],
    ['asked for in a directory that is not in a tmpfs (a disk stays a disk)', true, () => tempDir('raysub-objmount-disk-')],
  ])('%s, the store is the plain directory given', (what, hugePages, dirOf) => {
    const dir = dirOf();
    if (hugePages && inTmpfs(dir)) return void console.log(`skipped (${what}): the temporary directory is a tmpfs here`);
    const work = tempDir('raysub-objmount-work-');
    const p = openShmPool(dir, 64 * MiB, work, silentLogger(), { hugePages });
    onTestFinished(() => void (p.root && fs.existsSync(p.root) && unmountStore(p.root)));
    expect(p.ownTmpfs).toBe(false);
    expect(isMountPoint(p.root ?? '')).toBe(false);
    closeShmPool(p, work);
    expect(fs.readdirSync(dir)).toEqual([]);
  });
});
