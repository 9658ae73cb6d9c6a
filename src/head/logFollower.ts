import { isTerminal, type JobStatus, type LogStream } from '../shared/protocol/index.js';
import type { LogStore } from './logStore.js';
import { markAt, type TimeMark } from './logTimes.js';

export interface LogPiece {
  task: number;
  stream: LogStream;
  text: string;
  /** Byte offset in the task's log just after this piece: where a reconnecting reader resumes. */
  offset: number;
  /** With `timestamps`: when the piece's first byte was captured (ms since the epoch). */
  time?: number;
}

/** A piece of output, or `tick`: nothing new for a keep-alive interval, or the job changed state. */
export type FollowItem = ({ kind: 'piece' } & LogPiece) | { kind: 'tick' };

export interface FollowOptions {
  follow: boolean;
  signal: AbortSignal;
  taskCount: number;
  /** Byte offset to start from in each task's log (default 0). */
  from?: Readonly<Record<string, number>>;
  /** Read only this task's log. */
  task?: number;
  /** Cut pieces where their capture time changes and say it (`time`). */
  timestamps?: boolean;
  /** Yield a tick after this long without output. */
  keepaliveMs: number;
  /** The job's status now; throws JOB_NOT_FOUND once the job is deleted. */
  status: () => JobStatus;
  /** Subscribe to the job's state changes; returns the unsubscribe function. */
  onJobChange: (fn: () => void) => () => void;
}

const READ_BYTES = 256 * 1024;

/** Length of `buf` without a multi-byte UTF-8 character cut off at its end. */
export function completeUtf8Length(buf: Buffer): number {
  const n = buf.length;
  for (let back = 1; back <= Math.min(3, n); back++) {
    const b = buf[n - back] as number;
    if ((b & 0xc0) === 0x80) continue; // a continuation byte: look further back
    const need = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1;
    return need > back ? n - back : n;
  }
  return n;
}

/** Cut `data` (at byte `at` of a task's log) where its capture time changes, never inside a character. */
export function splitByTime(marks: readonly TimeMark[], at: number, data: Buffer): { data: Buffer; time: number | undefined }[] {
  let i = markAt(marks, at);
  const out: { data: Buffer; time: number | undefined }[] = [];
  let from = 0;
  for (;;) {
    const next = marks[i + 1];
    let cut = next ? next.offset - at : data.length;
    while (cut < data.length && ((data[cut] as number) & 0xc0) === 0x80) cut++;
    if (cut >= data.length) break;
    if (cut > from) out.push({ data: data.subarray(from, cut), time: marks[i]?.time });
    from = Math.max(from, cut);
    i++;
  }
  out.push({ data: data.subarray(from), time: marks[i]?.time });
  return out;
}

/**
 * Follow a job's task logs: yields text in the order it reached the head, starting at `from`,
 * and ends once the job is terminal and every file has been read to its end (the head writes all
 * of a task's output before it records the task's exit, so nothing arrives after that).
 *
 * Text is cut only between whole UTF-8 characters, so what a reader gets depends on the file
 * alone, never on where reads or reconnections fell: resuming at a piece's `offset` continues
 * exactly where that piece ended.
 */
export async function* followLogs(logs: LogStore, jobId: string, opts: FollowOptions): AsyncGenerator<FollowItem> {
  const offsets = new Array<number>(opts.taskCount).fill(0);
  for (const [task, at] of Object.entries(opts.from ?? {})) if (Number(task) < opts.taskCount) offsets[Number(task)] = at;
  const wanted = (task: number): boolean => opts.task === undefined || task === opts.task;
  const dirty = new Set<number>();
  let all = true; // read every task (the first pass, and after a quiet interval, in case a change was missed)
  let jobChanged = false;
  let wake: (() => void) | null = null;
  const unwatch = logs.watch(jobId, (idx) => {
    if (idx === null) jobChanged = true;
    else dirty.add(idx);
    wake?.();
  });
  const unsubscribe = opts.onJobChange(() => {
    jobChanged = true;
    wake?.();
  });
  const onAbort = (): void => wake?.();
  opts.signal.addEventListener('abort', onAbort);
  try {
    for (;;) {
      const terminal = isTerminal(opts.status());
      const tasks = (all || terminal ? [...offsets.keys()] : [...dirty]).filter(wanted);
      all = false;
      dirty.clear();
      let readAny = false;
      for (const task of tasks) {
        for (;;) {
          const at = offsets[task] ?? 0;
          const segments = logs.read(jobId, task, at, READ_BYTES);
          if (segments.length === 0) break;
          const readEnd = at + segments.reduce((n, s) => n + s.data.length, 0);
          const last = segments.length - 1;
          let pos = at;
          let cut = false;
          for (const [i, s] of segments.entries()) {
            // A character split at the end of what is there waits for its last bytes (unless no more can come).
            let data = s.data;
            if (i === last && !(terminal && readEnd >= logs.size(jobId, task))) {
              data = data.subarray(0, completeUtf8Length(data));
              cut = data.length < s.data.length;
            }
            if (data.length === 0) continue;
            const parts = opts.timestamps ? splitByTime(logs.timeMarks(jobId, task), pos, data) : [{ data, time: undefined }];
            for (const part of parts) {
              pos += part.data.length;
              offsets[task] = pos;
              readAny = true;
              yield { kind: 'piece', task, stream: s.stream, text: part.data.toString('utf8'), offset: pos, ...(part.time === undefined ? {} : { time: part.time }) };
              if (opts.signal.aborted) return;
            }
          }
          if (cut && pos === at) break;
          if (cut && readEnd >= logs.size(jobId, task)) break;
        }
      }
      if (opts.signal.aborted) return;
      if (!opts.follow || (terminal && !readAny)) return;
      if (jobChanged) {
        jobChanged = false;
        yield { kind: 'tick' };
        continue;
      }
      if (dirty.size > 0 || readAny) continue;
      const timedOut = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => done(true), opts.keepaliveMs);
        function done(byTimer: boolean): void {
          clearTimeout(timer);
          wake = null;
          resolve(byTimer);
        }
        wake = () => done(false);
      });
      if (timedOut) {
        all = true;
        yield { kind: 'tick' };
      }
    }
  } finally {
    unwatch();
    unsubscribe();
    opts.signal.removeEventListener('abort', onAbort);
  }
}

/** Turns pieces into whole lines with a "[task i] " prefix, for array jobs. */
export class LinePrefixer {
  private readonly partial = new Map<number, string>();

  push(piece: Pick<LogPiece, 'task' | 'text'>): string {
    const text = (this.partial.get(piece.task) ?? '') + piece.text;
    const cut = text.lastIndexOf('\n');
    if (cut < 0) {
      this.partial.set(piece.task, text);
      return '';
    }
    this.partial.set(piece.task, text.slice(cut + 1));
    return text
      .slice(0, cut + 1)
      .split('\n')
      .slice(0, -1)
      .map((l) => `[task ${piece.task}] ${l}\n`)
      .join('');
  }

  flush(): string {
    let out = '';
    for (const [task, rest] of this.partial) if (rest) out += `[task ${task}] ${rest}\n`;
    this.partial.clear();
    return out;
  }
}

/**
 * Every open follower of the head, so that closing the head ends them all, and a test can check
 * that none outlives its client.
 */
export class LogFollowers {
  private readonly open = new Set<AbortController>();

  /** Register a follower; call the returned function when it has ended (on every path). */
  start(): { signal: AbortSignal; abort: () => void; release: () => void } {
    const ac = new AbortController();
    this.open.add(ac);
    return { signal: ac.signal, abort: () => ac.abort(), release: () => this.open.delete(ac) };
  }

  get active(): number {
    return this.open.size;
  }

  closeAll(): void {
    for (const ac of this.open) ac.abort();
  }
}
