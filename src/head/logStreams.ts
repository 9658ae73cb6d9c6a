import fs from 'node:fs';
import type { LogStream } from '../shared/protocol/index.js';
import { cutBack, writeAll } from './logIo.js';

export interface StreamRange {
  offset: number;
  length: number;
  stream: LogStream;
}

const CACHE_LIMIT = 512;

/**
 * Which ranges of a task's log are not stdout (stderr, raysub's own lines), in a `.streams` side
 * file of `offset length stream` lines (part of LogStore, which alone calls it).
 */
export class LogStreams {
  private readonly cache = new Map<string, StreamRange[]>();

  /** Record a range written to the log (stdout ranges are not recorded: they are the default). */
  add(file: string, r: StreamRange): void {
    const fd = fs.openSync(file, 'a', 0o600);
    const before = fs.fstatSync(fd).size;
    try {
      writeAll(fd, Buffer.from(`${r.offset} ${r.length} ${r.stream}\n`));
    } catch (err) {
      cutBack(fd, before);
      throw err;
    } finally {
      fs.closeSync(fd);
    }
    const list = this.cache.get(file);
    if (list) merge(list, r);
  }

  /** The file's ranges, in offset order. */
  ranges(file: string): StreamRange[] {
    const cached = this.cache.get(file);
    if (cached) return cached;
    const list: StreamRange[] = [];
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch {
      text = '';
    }
    for (const line of text.split('\n')) {
      const [o, l, s] = line.split(' ');
      if (o === undefined || l === undefined || (s !== 'stderr' && s !== 'system')) continue;
      merge(list, { offset: Number(o), length: Number(l), stream: s });
    }
    this.cache.set(file, list);
    if (this.cache.size > CACHE_LIMIT) this.cache.delete(this.cache.keys().next().value as string);
    return list;
  }

  /** Forget what is cached for files under `prefix` (a job's logs were removed, or a write failed). */
  forget(prefix: string): void {
    for (const key of [...this.cache.keys()]) if (key.startsWith(prefix)) this.cache.delete(key);
  }
}

function merge(list: StreamRange[], r: StreamRange): void {
  const last = list[list.length - 1];
  if (last && last.stream === r.stream && last.offset + last.length === r.offset) last.length += r.length;
  else list.push(r);
}
