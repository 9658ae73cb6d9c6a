/**
 * Printing a job's output as it arrives: one ordered stream on stdout, task prefixes for array
 * jobs, capture times on request, the job's queue position and wait reason on stderr when they change,
 * and — only when the head really does not answer — what the CLI is doing about it.
 */
import type { FollowRetry, FollowState, RaysubClient } from '../client/index.js';
import type { JobDetails, JobStatus } from '../shared/protocol/index.js';
import type { CliContext } from './context.js';

export interface FollowOptions {
  follow: boolean;
  /** Prefix lines with "[task i] " (array jobs). */
  prefix: boolean;
  /** Print only the job's own output, not raysub's lines or notices. */
  quiet?: boolean;
  /** Print each chunk as an NDJSON line `{"task", "stream", "data"}` instead of text. */
  json?: boolean;
  /** Write the output to stderr instead of stdout (`submit --json` keeps stdout for its result). */
  toStderr?: boolean;
  /** Only this task's log. */
  task?: number;
  /** Start at each task's last N lines. */
  tail?: number;
  /** Start at what was captured at or after this time (ms since the epoch). */
  since?: number;
  /** Prefix each line with the time it was captured. */
  timestamps?: boolean;
}

/** Cuts text into whole lines per key, remembering when each line began. */
class LineSplitter {
  private readonly partial = new Map<string, { text: string; time: number | undefined }>();

  push(key: string, text: string, time: number | undefined): { line: string; time: number | undefined }[] {
    const held = this.partial.get(key);
    const parts = ((held?.text ?? '') + text).split('\n');
    const rest = parts.pop() ?? '';
    const out = parts.map((line, i) => ({ line, time: i === 0 && held?.text ? held.time : time }));
    this.partial.set(key, { text: rest, time: rest && parts.length === 0 && held?.text ? held.time : time });
    return out;
  }

  flush(): [string, { line: string; time: number | undefined }][] {
    const rest = [...this.partial.entries()].filter(([, v]) => v.text).map(([k, v]): [string, { line: string; time: number | undefined }] => [k, { line: v.text, time: v.time }]);
    this.partial.clear();
    return rest;
  }
}

/** A capture time as a line prefix: RFC 3339 in UTC with milliseconds, as `kubectl logs --timestamps`. */
export function timestampPrefix(time: number | undefined): string {
  return time === undefined ? '-'.padEnd(24) : new Date(time).toISOString();
}

const STILL_DOWN_EVERY_MS = 30_000;

function duration(ms: number): string {
  const s = Math.round(ms / 1000);
  return s >= 60 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s` : `${s}s`;
}

/** Notices on stderr: the job's state when it changes, and the head's reachability when it is lost. */
function notices(ctx: CliContext, quiet: boolean) {
  let waited = false;
  let lastDownNotice = -Infinity;
  const say = (text: string): void => {
    if (!quiet) ctx.err.write(ctx.errColor.dim(`raysub: ${text}`) + '\n');
  };
  /**
   * The job left the queue. Its state lines carry the state when they are sent, so a short job
   * can go from PENDING to its end between two of them: its first output says it ran.
   */
  const started = (): void => {
    if (!waited) return;
    waited = false;
    say('job is running');
  };
  return {
    onOutput: started,
    onState(s: FollowState): void {
      // A job placed on a node (position 0) is about to start: only a real wait is worth a line.
      if (s.status === 'PENDING' && s.queue && s.queue.position > 0) {
        waited = true;
        say(`job is queued (position ${s.queue.position}): ${s.queue.reason}`);
      } else if (s.status === 'RUNNING') {
        started();
      }
    },
    onRetry(r: FollowRetry): void {
      if (r.headAnswered) {
        say(`the head is unavailable (${r.error.message}); retrying in ${duration(r.delayMs)}`);
        return;
      }
      const first = r.downForMs === 0 || lastDownNotice < 0;
      if (!first && r.downForMs - lastDownNotice < STILL_DOWN_EVERY_MS) return;
      lastDownNotice = r.downForMs;
      const limit = ctx.follow.unreachableTimeoutMs;
      say(first ? `${r.error.message}; retrying for up to ${duration(limit)}` : `still cannot reach the head (for ${duration(r.downForMs)}); retrying`);
    },
    onResumed(): void {
      lastDownNotice = -Infinity;
      say('the head answers again; following the log from where it stopped');
    },
  };
}

/** The same client, retrying for as long as commands that follow a job wait for an unreachable head. */
export function patientClient(ctx: CliContext): RaysubClient {
  return ctx.client.derive({ retries: Math.ceil(ctx.follow.unreachableTimeoutMs / 8000) + 3 });
}

/**
 * Print a job's log (following it until it ends with `follow`) as one ordered stream: the job's
 * output and raysub's lines on stdout (stderr with `toStderr`), stderr (where the job keeps it
 * apart) red and raysub's lines dim on a terminal only. Returns the job's status at the end.
 */
export async function printLogs(ctx: CliContext, jobId: string, opts: FollowOptions): Promise<JobStatus | null> {
  const splitter = new LineSplitter();
  const target = opts.toStderr ? ctx.err : ctx.out;
  const pal = opts.toStderr ? ctx.errColor : ctx.color;
  const byLine = opts.prefix || Boolean(opts.timestamps);
  const paint = (stream: string, s: string): string => (stream === 'stderr' ? pal.red(s) : stream === 'system' ? pal.dim(s) : s);
  const writeLine = (task: string, stream: string, line: string, time: number | undefined): void => {
    const head = `${opts.timestamps ? `${pal.dim(timestampPrefix(time))} ` : ''}${opts.prefix ? `${pal.cyan(`[task ${task}]`)} ` : ''}`;
    target.write(`${head}${paint(stream, line)}\n`);
  };
  const write = (task: number, stream: string, text: string, time: number | undefined): void => {
    if (stream === 'system' && opts.quiet) return;
    if (opts.json) {
      ctx.out.write(JSON.stringify({ task, stream, data: text, ...(opts.timestamps && time !== undefined ? { time } : {}) }) + '\n');
      return;
    }
    if (!byLine) {
      target.write(paint(stream, text));
      return;
    }
    for (const l of splitter.push(`${task}/${stream}`, text, time)) writeLine(String(task), stream, l.line, l.time);
  };
  let status: JobStatus | null = null;
  const notice = notices(ctx, Boolean(opts.quiet));
  const lines = ctx.client.followLogs(jobId, {
    follow: opts.follow,
    idleMs: ctx.follow.idleMs,
    unreachableTimeoutMs: ctx.follow.unreachableTimeoutMs,
    task: opts.task,
    tail: opts.tail,
    since: opts.since,
    timestamps: opts.timestamps,
    onState: (s) => notice.onState(s),
    onRetry: (r) => notice.onRetry(r),
    onResumed: () => notice.onResumed(),
  });
  for await (const line of lines) {
    if ('end' in line) {
      status = line.status;
      continue;
    }
    if (line.stream !== 'system') notice.onOutput();
    write(line.task, line.stream, line.data, line.time);
  }
  for (const [key, rest] of splitter.flush()) {
    const [task = '0', stream = 'stdout'] = key.split('/');
    writeLine(task, stream, rest.line, rest.time);
  }
  return status;
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
      const first = (job.raysub.message ?? job.message ?? '').split('\n')[0] ?? '';
      return `${id} ${c.red('failed')} (${job.raysub.error_type ?? 'UNKNOWN'}): ${first}`;
    }
    default:
      return `${id} is ${job.status}`;
  }
}
