/** A small tmpfs of a test's own, for an agent's work dir (mounting one needs root). */
import { execFileSync } from 'node:child_process';
import { onTestFinished, type TestContext } from 'vitest';
import { tempDir } from './cluster.js';

/** Mount a tmpfs with `options` (size, inodes), unmounted when the test ends; null (having said why) where none can be mounted. */
export function smallDisk(ctx: TestContext, options: string): string | null {
  if (process.getuid?.() !== 0) {
    console.warn(`skipping "${ctx.task.name}": mounting a small tmpfs for the agent's work dir needs root`);
    return null;
  }
  const mnt = tempDir('raysub-disk-');
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `${options},mode=0711`, 'tmpfs', mnt]);
  } catch (err) {
    console.warn(`skipping "${ctx.task.name}": cannot mount a tmpfs (${(err as Error).message.split('\n')[0]})`);
    return null;
  }
  onTestFinished(() => {
    execFileSync('umount', ['-l', mnt]);
  });
  return mnt;
}
