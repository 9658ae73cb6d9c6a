import type { LogStream } from '../shared/protocol/index.js';
import { SideFiles } from './logIo.js';

export interface StreamRange {
  offset: number;
  length: number;
  stream: LogStream;
}

/**
 * Which ranges of a task's log are not stdout (stderr, raysub's own lines), in a `.streams` side
 * file of `offset length stream` lines (part of LogStore, which alone calls it).
 */
export class LogStreams {
  private readonly files = new SideFiles<StreamRange>((line, ranges) => {
    const [o, l, s] = line.split(' ');
    if (o === undefined || l === undefined || (s !== 'stderr' && s !== 'system')) return;
    merge(ranges, { offset: Number(o), length: Number(l), stream: s });
  });

  /** Record a range written to the log (stdout ranges are not recorded: they are the default). */
  add(file: string, r: StreamRange): void {
    this.files.append(file, `${r.offset} ${r.length} ${r.stream}\n`);
    const list = this.files.cached(file);
    if (list) merge(list, r);
  }

  /** The file's ranges, in offset order. */
  ranges(file: string): StreamRange[] {
    return this.files.entries(file);
  }

  /** Forget what is cached for files under `prefix` (a job's logs were removed, or a write failed). */
  forget(prefix: string): void {
    this.files.forget(prefix);
  }
}

function merge(list: StreamRange[], r: StreamRange): void {
  const last = list[list.length - 1];
  if (last && last.stream === r.stream && last.offset + last.length === r.offset) last.length += r.length;
  else list.push(r);
}
