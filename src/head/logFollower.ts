import { StringDecoder } from 'node:string_decoder';
import { isTerminal, type JobStatus, type LogStream } from '../shared/protocol/index.js';
import type { Engine } from './engine.js';
import type { LogStore } from './logStore.js';

export interface LogPiece {
  task: number;
  stream: LogStream;
  text: string;
}

const READ_BYTES = 256 * 1024;

/**
 * Follow a job's task logs from the start: yields text in the order it reached the head, and
 * ends once the job is terminal and every file has been read to its end (the head writes all of
 * a task's output before it records the task's exit, so nothing arrives after that).
 */
export async function* followLogs(
  { engine, logs }: { engine: Engine; logs: LogStore },
  jobId: string,
  opts: { follow: boolean; signal: AbortSignal; status: () => JobStatus; taskCount: number },
): AsyncGenerator<LogPiece> {
  const offsets = new Array<number>(opts.taskCount).fill(0);
  const decoders = new Map<string, StringDecoder>();
  const decoder = (task: number, stream: LogStream): StringDecoder => {
    const key = `${task}/${stream}`;
    let d = decoders.get(key);
    if (!d) decoders.set(key, (d = new StringDecoder('utf8')));
    return d;
  };

  let changed: boolean;
  const wakeUp: { fn: (() => void) | null } = { fn: null };
  const onAppend = (id: string): void => {
    if (id !== jobId) return;
    changed = true;
    wakeUp.fn?.();
  };
  const onJob = (id: string): void => onAppend(id);
  logs.on('append', onAppend);
  engine.on('job', onJob);
  const onAbort = (): void => wakeUp.fn?.();
  opts.signal.addEventListener('abort', onAbort);
  try {
    for (;;) {
      changed = false;
      const terminal = isTerminal(opts.status());
      let readAny = false;
      for (let task = 0; task < opts.taskCount; task++) {
        for (;;) {
          const segments = logs.read(jobId, task, offsets[task] ?? 0, READ_BYTES);
          if (segments.length === 0) break;
          readAny = true;
          for (const s of segments) {
            offsets[task] = (offsets[task] ?? 0) + s.data.length;
            const text = decoder(task, s.stream).write(s.data);
            if (text) yield { task, stream: s.stream, text };
          }
        }
      }
      if (opts.signal.aborted) return;
      if (!opts.follow || (terminal && !readAny)) break;
      if (!changed) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(done, 1000);
          function done(): void {
            clearTimeout(timer);
            wakeUp.fn = null;
            resolve();
          }
          wakeUp.fn = done;
        });
      }
    }
    for (const [key, d] of decoders) {
      const rest = d.end();
      const [task, stream] = key.split('/');
      if (rest) yield { task: Number(task), stream: stream as LogStream, text: rest };
    }
  } finally {
    logs.off('append', onAppend);
    engine.off('job', onJob);
    opts.signal.removeEventListener('abort', onAbort);
  }
}

/** Turns pieces into whole lines with a "[task i] " prefix, for array jobs. */
export class LinePrefixer {
  private readonly partial = new Map<number, string>();

  push(piece: LogPiece): string {
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
