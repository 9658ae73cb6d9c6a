/**
 * Low-level file writes for the log store (logStore.ts and logTail.ts only): whole writes, cutting
 * a failed one back off, and a full disk as DISK_FULL.
 */
import fs from 'node:fs';
import { RaysubError } from '../shared/errors.js';

/** Write all of `data` (at `position`, or at the end for an append-mode descriptor). */
export function writeAll(fd: number, data: Buffer, position?: number): void {
  let done = 0;
  while (done < data.length) done += fs.writeSync(fd, data, done, data.length - done, position === undefined ? null : position + done);
}

/** A size in MiB or KiB, for messages. */
export function mib(n: number): string {
  return n >= 1024 * 1024 ? `${(n / 1024 / 1024).toFixed(n % (1024 * 1024) ? 1 : 0)} MiB` : `${Math.round(n / 1024)} KiB`;
}

/** Cut a file back to `size` after a failed write (best effort: a device cannot be cut). */
export function cutBack(fd: number, size: number): void {
  try {
    fs.ftruncateSync(fd, size);
  } catch {
    // nothing more to do: the caller forgets what it knew of the file
  }
}

/** ENOSPC and friends become DISK_FULL (507, retryable); anything else stays what it is. */
export function storageError(err: unknown, what: string): unknown {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return new RaysubError('DISK_FULL', `the head's disk is full: cannot store ${what}; free space on the head (retry later)`, { cause: err, retryable: true });
  }
  return err;
}
