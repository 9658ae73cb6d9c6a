/**
 * When each piece of a task's log was captured: a `<task-index>.times` side file of
 * "offset milliseconds" lines, one per write whose time differs from the one before. A byte's
 * capture time is that of the last mark at or before it. Times never go backwards in a file (an
 * agent's clock that does is held at the previous mark) and never lie in the future of the head's
 * clock, so a reader can look a time up by bisection.
 */
import { SideFiles } from './logIo.js';

export interface TimeMark {
  offset: number;
  time: number;
}

export class LogTimes {
  private readonly files = new SideFiles<TimeMark>((line, marks) => {
    const [o, t] = line.split(' ').map(Number);
    if (o === undefined || t === undefined || !Number.isSafeInteger(o) || !Number.isSafeInteger(t)) return;
    // A mark left by a write that was cut back (a full disk) may repeat an offset: the later one holds.
    while (marks.length && (marks[marks.length - 1] as TimeMark).offset >= o) marks.pop();
    marks.push({ offset: o, time: t });
  });

  /** Record that the bytes written at `offset` were captured at `time` (clamped as the file requires). */
  mark(file: string, offset: number, time: number): void {
    const marks = this.marks(file);
    const last = marks[marks.length - 1];
    const t = Math.max(last?.time ?? 0, Math.min(Math.floor(time), Date.now()));
    if (last && last.time === t) return;
    this.files.append(file, `${offset} ${t}\n`);
    marks.push({ offset, time: t });
  }

  /** The file's marks, in offset order. */
  marks(file: string): TimeMark[] {
    return this.files.entries(file);
  }

  /** Forget what is cached for files under `prefix` (a job's logs were removed, or a write failed). */
  forget(prefix: string): void {
    this.files.forget(prefix);
  }
}

/** Index of the last mark at or before `offset` (-1: none). */
export function markAt(marks: readonly TimeMark[], offset: number): number {
  let lo = 0;
  let hi = marks.length - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if ((marks[mid] as TimeMark).offset <= offset) {
      found = mid;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  return found;
}

/** Offset of the first mark captured at or after `time` (null: none). */
export function firstOffsetSince(marks: readonly TimeMark[], time: number): number | null {
  let lo = 0;
  let hi = marks.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((marks[mid] as TimeMark).time < time) lo = mid + 1;
    else hi = mid;
  }
  return lo < marks.length ? (marks[lo] as TimeMark).offset : null;
}
