/**
 * Low-level file writes for the log store and its side files (log*.ts only): whole writes, cutting
 * a failed one back off, a full disk as DISK_FULL, side files parsed once.
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

/**
 * A side file of the log store (times, streams): lines appended whole, parsed once when first
 * read, the parsed entries of the 512 most recently read files kept.
 */
export class SideFiles<T> {
  private readonly cache = new Map<string, T[]>();

  /** `parse` adds what one line says to the entries read so far (or skips a line it cannot read). */
  constructor(private readonly parse: (line: string, entries: T[]) => void) {}

  /** Append one line (cut back off the file if it could not be written whole). */
  append(file: string, line: string): void {
    const fd = fs.openSync(file, 'a', 0o600);
    const before = fs.fstatSync(fd).size;
    try {
      writeAll(fd, Buffer.from(line));
    } catch (err) {
      cutBack(fd, before);
      throw err;
    } finally {
      fs.closeSync(fd);
    }
  }

  /** The file's entries, read once. */
  entries(file: string): T[] {
    const cached = this.cache.get(file);
    if (cached) return cached;
    const entries: T[] = [];
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch {
      text = '';
    }
    for (const line of text.split('\n')) this.parse(line, entries);
    this.cache.set(file, entries);
    if (this.cache.size > 512) this.cache.delete(this.cache.keys().next().value as string);
    return entries;
  }

  /** The file's entries if they were read, else undefined (nothing is read). */
  cached(file: string): T[] | undefined {
    return this.cache.get(file);
  }

  /** Forget what is cached for files under `prefix` (a job's logs were removed, or a write failed). */
  forget(prefix: string): void {
    for (const key of [...this.cache.keys()]) if (key.startsWith(prefix)) this.cache.delete(key);
  }
}
