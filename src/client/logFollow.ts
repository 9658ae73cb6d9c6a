/**
 * Following a job's log without ever lying about the head: the head sends keep-alives while the
 * job is quiet or queued, so a stream silent for longer than the idle limit is a dead connection,
 * not a quiet job; it is reopened where it stopped (byte offsets per task), after a dropped
 * connection or a head restart alike. Only a head that does not answer at all is reported, and
 * given up on after `unreachableTimeoutMs`.
 */
import { StringDecoder } from 'node:string_decoder';
import { RaysubError, isErrorCode, toRaysubError } from '../shared/errors.js';
import { logStreamLineSchema, type JobStatus, type LogStream } from '../shared/protocol/index.js';
import { sleep } from '../shared/abort.js';

export interface FollowState {
  status: JobStatus;
  queue: { position: number; reason: string } | null;
}

export interface FollowRetry {
  error: RaysubError;
  /** The head answered (e.g. 503 while it shuts down) rather than not at all. */
  headAnswered: boolean;
  /** How long the head has been unreachable so far. */
  downForMs: number;
  delayMs: number;
}

export interface FollowLogsOptions {
  follow: boolean;
  signal?: AbortSignal;
  /** Reopen a stream that brought nothing (no output, no keep-alive) for this long (default 30 s). */
  idleMs?: number;
  /** Give up once the head has not answered for this long (default 5 min). */
  unreachableTimeoutMs?: number;
  /** The job's state, each time it changes (status, queue position or wait reason). */
  onState?: (state: FollowState) => void;
  /** A reconnection failed and will be tried again after `delayMs`. */
  onRetry?: (info: FollowRetry) => void;
  /** The head answers again after `onRetry` reported it. */
  onResumed?: () => void;
  /** Only this task's log (an array job's task index). */
  task?: number;
  /** Start at each task's last N lines. */
  tail?: number;
  /** Start at what was captured at or after this time (ms since the epoch). */
  since?: number;
  /** Output carries its capture time (`time`). */
  timestamps?: boolean;
}

export type FollowedLine = { task: number; stream: LogStream; data: string; time?: number } | { end: true; status: JobStatus };

/** Opens the stream at the given offsets (task index -> byte offset); throws RaysubError on failure. */
export type OpenLogStream = (from: Record<string, number>, signal: AbortSignal) => Promise<AsyncIterable<Buffer>>;


export async function* followLogStream(open: OpenLogStream, opts: FollowLogsOptions): AsyncGenerator<FollowedLine> {
  const idleMs = opts.idleMs ?? 30_000;
  const unreachableMs = opts.unreachableTimeoutMs ?? 300_000;
  const offsets: Record<string, number> = {};
  // For a head that sends no offsets: characters printed per task, to skip on a restart from 0.
  const printedChars = new Map<number, number>();
  let keepaliveMs = 0;
  let lastState = '';
  let downSince: number | null = null;
  let reported = false;
  let failures = 0;
  for (;;) {
    const conn = new AbortController();
    const onOuterAbort = (): void => conn.abort();
    opts.signal?.addEventListener('abort', onOuterAbort);
    let idled = false;
    let idleTimer: NodeJS.Timeout | undefined;
    const arm = (): void => {
      clearTimeout(idleTimer);
      idleTimer = setTimeout(() => {
        idled = true;
        conn.abort();
      }, Math.max(idleMs, 3 * keepaliveMs));
    };
    let connected = false;
    let gotLines = false;
    const startedAt = Date.now();
    try {
      arm();
      const body = await open(offsets, conn.signal);
      connected = true;
      downSince = null;
      if (reported) opts.onResumed?.();
      reported = false;
      const decoder = new StringDecoder('utf8');
      const seenChars = new Map<number, number>();
      let buffer = '';
      for await (const chunk of body) {
        arm();
        buffer += decoder.write(chunk);
        let nl: number;
        while ((nl = buffer.indexOf('\n')) >= 0) {
          const text = buffer.slice(0, nl);
          buffer = buffer.slice(nl + 1);
          if (!text) continue;
          const line = logStreamLineSchema.parse(JSON.parse(text));
          gotLines = true;
          if ('keepalive' in line) {
            keepaliveMs = line.keepalive_ms;
            const key = JSON.stringify([line.status, line.queue]);
            if (key !== lastState) {
              lastState = key;
              opts.onState?.({ status: line.status, queue: line.queue });
            }
          } else if ('end' in line) {
            yield line;
            return;
          } else if ('from' in line) {
            // Where tail/since put each task: a reconnection resumes from there, never from the start.
            for (const [task, at] of Object.entries(line.from)) offsets[task] ??= at;
          } else if ('error' in line) {
            const code = isErrorCode(line.error.code) ? line.error.code : 'INTERNAL';
            throw new RaysubError(code, line.error.message, { retryable: false });
          } else {
            let data = line.data;
            if (line.offset !== undefined) offsets[String(line.task)] = line.offset;
            else {
              const seen = seenChars.get(line.task) ?? 0;
              const printed = printedChars.get(line.task) ?? 0;
              seenChars.set(line.task, seen + data.length);
              if (seen + data.length <= printed) continue;
              data = data.slice(Math.max(0, printed - seen));
              printedChars.set(line.task, seen + line.data.length);
            }
            yield { task: line.task, stream: line.stream, data, ...(line.time === undefined ? {} : { time: line.time }) };
          }
        }
      }
      throw new RaysubError('HEAD_UNREACHABLE', 'the log stream ended early', { retryable: true });
    } catch (err) {
      if (opts.signal?.aborted) return;
      let e = toRaysubError(err);
      if (err instanceof SyntaxError || (err as { name?: string }).name === 'ZodError') {
        throw new RaysubError('BAD_RESPONSE', `the head sent a log stream line raysub cannot read: ${e.message}`);
      }
      if (err instanceof RaysubError && !err.retryable) throw err;
      if (idled && !connected) {
        e = new RaysubError('HEAD_UNREACHABLE', `the head did not answer within ${(Math.max(idleMs, 3 * keepaliveMs) / 1000).toFixed(0)}s`, { retryable: true });
      } else if (connected) {
        // A stream that went silent or broke after the head answered: reopen it (at once, unless
        // it keeps breaking), and report nothing unless reopening fails.
        if (gotLines && Date.now() - startedAt >= 5000) failures = 0;
        else await sleep(Math.min(8000, 250 * 2 ** Math.min(failures++, 5)), opts.signal);
        if (opts.signal?.aborted) return;
        continue;
      }
      if (!e.retryable) throw e;
      const headAnswered = e.httpStatus > 0 && e.code !== 'HEAD_UNREACHABLE';
      if (headAnswered) downSince = null;
      else downSince ??= Date.now();
      const downForMs = downSince === null ? 0 : Date.now() - downSince;
      if (downSince !== null && downForMs >= unreachableMs) {
        throw new RaysubError('HEAD_UNREACHABLE', `${e.message}; gave up after ${Math.round(downForMs / 1000)}s`, { cause: e });
      }
      const delayMs = Math.min(8000, 250 * 2 ** Math.min(failures++, 5));
      reported = true;
      opts.onRetry?.({ error: e, headAnswered, downForMs, delayMs });
      await sleep(delayMs, opts.signal);
      if (opts.signal?.aborted) return;
    } finally {
      clearTimeout(idleTimer);
      opts.signal?.removeEventListener('abort', onOuterAbort);
    }
  }
}
