/**
 * Where the agent keeps its sandboxes' per-task files (stateDir.ts): a private directory on the
 * tmpfs where it may have one, its own work dir's `sandbox` otherwise; a name someone else took
 * in the shared tmpfs is never used nor touched. On real files.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { openStateDir, removeStateDir, shmStateDir } from '../src/agent/sandbox/stateDir.js';
import { tempDir } from './helpers/cluster.js';

const TMPFS_MAGIC = 0x01021994;

/** A directory of the test's own on a tmpfs (what /dev/shm is), or null where there is none. */
function tmpfsDir(): string | null {
  try {
    if (fs.statfsSync('/dev/shm').type !== TMPFS_MAGIC) return null;
    const dir = fs.mkdtempSync(path.join('/dev/shm', 'raysub-test-'));
    onTestFinished(() => fs.rmSync(dir, { recursive: true, force: true }));
    return dir;
  } catch {
    return null;
  }
}

const uid = process.getuid?.() ?? 0;
const mode = (p: string) => fs.lstatSync(p).mode & 0o777;

describe("the agent's sandbox state directory", () => {
  it('is a private directory on the tmpfs, emptied when an agent starts on the same work dir, and removed when it ends', (ctx) => {
    const shm = tmpfsDir();
    if (!shm) return ctx.skip(true, 'no tmpfs at /dev/shm on this machine');
    const workDir = tempDir();
    const dir = openStateDir(workDir, { shm, uid });
    expect(dir).toBe(shmStateDir(workDir, { shm, uid }));
    expect(path.dirname(dir)).toBe(shm);
    expect(mode(dir)).toBe(0o700);
    expect(fs.existsSync(path.join(workDir, 'sandbox'))).toBe(false);
    fs.writeFileSync(path.join(dir, 'passwd'), 'left by the last run');
    // The same work dir again (a restart): the same directory, emptied of the last run's files.
    expect(openStateDir(workDir, { shm, uid })).toBe(dir);
    expect(fs.readdirSync(dir)).toEqual(['.agent-workdir']);
    // Another work dir gets another directory.
    expect(openStateDir(tempDir(), { shm, uid })).not.toBe(dir);
    removeStateDir(dir);
    expect(fs.existsSync(dir)).toBe(false);
  });

  it("falls back to the work dir where the name is taken by a symlink, a directory of another mode or a file, and leaves what was there alone", (ctx) => {
    const shm = tmpfsDir();
    if (!shm) return ctx.skip(true, 'no tmpfs at /dev/shm on this machine');
    const target = tempDir();
    fs.writeFileSync(path.join(target, 'precious'), 'x');
    const takers: [string, (p: string) => void][] = [
      ['a symlink to another directory', (p) => fs.symlinkSync(target, p)],
      ['a directory others may enter', (p) => fs.chmodSync((fs.mkdirSync(p), p), 0o755)],
      ['a file', (p) => fs.writeFileSync(p, '')],
    ];
    for (const [what, take] of takers) {
      const workDir = tempDir();
      const name = shmStateDir(workDir, { shm, uid });
      take(name);
      const dir = openStateDir(workDir, { shm, uid });
      expect(dir, what).toBe(path.join(workDir, 'sandbox'));
      expect(mode(dir), what).toBe(0o700);
      expect(fs.existsSync(name), what).toBe(true);
      expect(fs.readdirSync(target), what).toEqual(['precious']);
    }
  });

  it('falls back to the work dir where there is no tmpfs', () => {
    const workDir = tempDir();
    const notTmpfs = path.join(tempDir(), 'missing');
    const dir = openStateDir(workDir, { shm: notTmpfs, uid });
    expect(dir).toBe(path.join(workDir, 'sandbox'));
    expect(mode(dir)).toBe(0o700);
  });

  it('removes the directory of an agent killed whose work dir is gone, and no other', (ctx) => {
    const shm = tmpfsDir();
    if (!shm) return ctx.skip(true, 'no tmpfs at /dev/shm on this machine');
    const kept = tempDir();
    const keptDir = openStateDir(kept, { shm, uid });
    const gone = path.join(tempDir(), 'work');
    fs.mkdirSync(gone);
    const goneDir = openStateDir(gone, { shm, uid });
    fs.rmSync(gone, { recursive: true });
    const unrelated = path.join(shm, 'raysub-sandbox-unrelated');
    fs.mkdirSync(unrelated, { mode: 0o700 });
    openStateDir(tempDir(), { shm, uid });
    expect(fs.existsSync(goneDir)).toBe(false);
    expect(fs.existsSync(keptDir)).toBe(true);
    expect(fs.existsSync(unrelated)).toBe(true);
  });
});
