/**
 * Removing a directory tree without holding the event loop: renamed out of the way at once (a
 * directory of the same name may be made again next), then removed in the thread pool. On a
 * disk's file system removing a tree waits for the journal while other processes write.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

/** Remove `dir` (gone already: nothing); `failed` hears of a removal that went wrong in the background. */
export function removeAside(dir: string, failed: (err: unknown) => void): void {
  const trash = path.join(path.dirname(dir), `.trash-${crypto.randomBytes(6).toString('hex')}`);
  try {
    fs.renameSync(dir, trash);
  } catch {
    // gone already, or not movable: removed in place
    fs.rmSync(dir, { recursive: true, force: true });
    return;
  }
  fs.promises.rm(trash, { recursive: true, force: true }).catch(failed);
}
