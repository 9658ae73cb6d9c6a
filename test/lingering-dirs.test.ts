/**
 * A job's directory on an agent outlives its last task a while (a served sandbox may still bind
 * it): removed once empty that long after its last use, tracked in one map under one timer
 * however many tasks end. Real directories in a temporary dir; time passed in where it decides.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it, onTestFinished, vi } from 'vitest';
import { LingeringDirs } from '../src/agent/lingeringDirs.js';
import { silentLogger } from '../src/shared/log.js';

function tempDirs(...names: string[]): string[] {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'raysub-linger-'));
  onTestFinished(() => fs.rmSync(root, { recursive: true, force: true }));
  return names.map((n) => {
    const d = path.join(root, n);
    fs.mkdirSync(d);
    return d;
  });
}

const removeIfEmpty = (dir: string): void => {
  try {
    fs.rmdirSync(dir);
  } catch {
    // in use again
  }
};

describe('lingering directories', () => {
  it('removes each directory once it has not been used for the linger time, not before, and keeps one in use', () => {
    const [a = '', b = '', c = ''] = tempDirs('a', 'b', 'c');
    let now = 0;
    const dirs = new LingeringDirs(30_000, removeIfEmpty, silentLogger(), () => now);
    onTestFinished(() => dirs.close());
    const steps: { at: number; touch?: string; sweep?: true; left: string[] }[] = [
      { at: 0, touch: a, left: [a, b, c] },
      { at: 10, touch: b, left: [a, b, c] },
      { at: 20, touch: c, left: [a, b, c] },
      { at: 20_000, touch: b, left: [a, b, c] }, // used again: its time starts over
      { at: 29_999, sweep: true, left: [a, b, c] },
      { at: 30_000, sweep: true, left: [b, c] },
      { at: 30_020, sweep: true, left: [b, c] }, // c is in use (not empty): left in place
      { at: 49_999, sweep: true, left: [b, c] },
      { at: 50_000, sweep: true, left: [c] },
    ];
    fs.writeFileSync(path.join(c, 'task-dir'), '');
    for (const s of steps) {
      now = s.at;
      if (s.touch) dirs.touch(s.touch);
      if (s.sweep) dirs.sweep();
      expect([a, b, c].filter((d) => fs.existsSync(d)), `at ${s.at}`).toEqual(s.left);
    }
    // Nothing lingers any more: c was in use when its time came, and goes with its job's next use.
    expect(dirs.sweep()).toBe(0);
  });

  it('holds one timer however many uses, and removes the directories when it fires', async () => {
    const names = Array.from({ length: 500 }, (_, i) => `job${i}`);
    const all = tempDirs(...names);
    // Counted as they are set (the timer is unref'd: Node's list of active resources omits it).
    const setTimer = vi.spyOn(globalThis, 'setTimeout');
    onTestFinished(() => setTimer.mockRestore());
    const dirs = new LingeringDirs(50, removeIfEmpty, silentLogger());
    onTestFinished(() => dirs.close());
    for (const d of all) dirs.touch(d);
    for (const d of all) dirs.touch(d);
    expect(setTimer).toHaveBeenCalledTimes(1);
    await expect.poll(() => all.filter((d) => fs.existsSync(d)).length, { timeout: 10_000 }).toBe(0);
    expect(dirs.sweep()).toBe(0);
  });

  it('keeps sweeping after a removal throws', async () => {
    const [a = '', b = ''] = tempDirs('a', 'b');
    let calls = 0;
    const dirs = new LingeringDirs(
      20,
      (dir) => {
        calls++;
        if (calls === 1) throw new Error('disk gone');
        removeIfEmpty(dir);
      },
      silentLogger(),
    );
    onTestFinished(() => dirs.close());
    dirs.touch(a);
    await expect.poll(() => calls, { timeout: 10_000 }).toBe(1);
    dirs.touch(b);
    await expect.poll(() => fs.existsSync(b), { timeout: 10_000 }).toBe(false);
  });
});
