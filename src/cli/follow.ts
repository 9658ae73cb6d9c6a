/**
 * Printing a job's output as it arrives: stdout to stdout, stderr (coloured) to stderr, task
 * prefixes for array jobs, and a reconnect that skips what was already printed if the head drops.
 */
import { toRaysubError } from '../shared/errors.js';
import type { JobDetails } from '../shared/protocol/index.js';
import type { CliContext } from './context.js';

export interface FollowOptions {
  follow: boolean;
  /** Prefix lines with "[task i] " (array jobs). */
  prefix: boolean;
  /** Print only the job's own output, not raysub's lines. */
  quiet?: boolean;
  /** Print each chunk as an NDJSON line `{"task", "stream", "data"}` instead of text. */
  json?: boolean;
}

class LineSplitter {
  private readonly partial = new Map<string, string>();

  push(key: string, text: string): string[] {
    const all = (this.partial.get(key) ?? '') + text;
    const lines = all.split('\n');
    this.partial.set(key, lines.pop() ?? '');
    return lines;
  }

  flush(): [string, string][] {
    const rest = [...this.partial.entries()].filter(([, v]) => v);
    this.partial.clear();
    return rest;
  }
}

export async function printLogs(ctx: CliContext, jobId: string, opts: FollowOptions): Promise<void> {
  const printed = new Map<number, number>(); // characters already printed per task
  const splitter = new LineSplitter();
  const write = (task: number, stream: string, text: string): void => {
    if (stream === 'system' && opts.quiet) return;
    if (opts.json) {
      ctx.out.write(JSON.stringify({ task, stream, data: text }) + '\n');
      return;
    }
    const target = stream === 'stdout' ? ctx.out : ctx.err;
    const pal = stream === 'stdout' ? ctx.color : ctx.errColor;
    const paint = (s: string): string => (stream === 'stderr' ? pal.red(s) : stream === 'system' ? pal.dim(s) : s);
    if (!opts.prefix) {
      target.write(paint(text));
      return;
    }
    for (const line of splitter.push(`${task}/${stream}`, text)) target.write(`${pal.cyan(`[task ${task}]`)} ${paint(line)}\n`);
  };
  for (let attempt = 0; ; attempt++) {
    try {
      const seen = new Map<number, number>();
      for await (const line of ctx.client.streamLogs(jobId, { follow: opts.follow })) {
        if ('end' in line) break;
        const before = seen.get(line.task) ?? 0;
        seen.set(line.task, before + line.data.length);
        const already = printed.get(line.task) ?? 0;
        if (before + line.data.length <= already) continue;
        const fresh = line.data.slice(Math.max(0, already - before));
        printed.set(line.task, before + line.data.length);
        write(line.task, line.stream, fresh);
      }
      break;
    } catch (err) {
      const e = toRaysubError(err);
      if (!e.retryable || attempt >= 8) throw e;
      const delay = Math.min(8000, 250 * 2 ** attempt);
      ctx.err.write(`raysub: ${e.message}; reconnecting in ${(delay / 1000).toFixed(1)}s\n`);
      await new Promise((r) => setTimeout(r, delay));
    }
  }
  for (const [key, rest] of splitter.flush()) {
    const [task, stream] = key.split('/');
    const target = stream === 'stdout' ? ctx.out : ctx.err;
    target.write(`${ctx.color.cyan(`[task ${task}]`)} ${rest}\n`);
  }
}

/** One line saying how a job ended, for stderr. */
export function describeOutcome(ctx: CliContext, job: JobDetails): string {
  const c = ctx.errColor;
  const id = `Job '${job.submission_id}'`;
  switch (job.status) {
    case 'SUCCEEDED':
      return `${id} ${c.green('succeeded')}`;
    case 'STOPPED':
      return `${id} was ${c.yellow('stopped')}`;
    case 'FAILED': {
      const first = (job.message ?? '').split('\n')[0] ?? '';
      return `${id} ${c.red('failed')} (${job.error_type ?? 'UNKNOWN'}): ${first}`;
    }
    default:
      return `${id} is ${job.status}`;
  }
}
