/**
 * The three ways the head serves a job's log: raysub's NDJSON stream (resumable, with keep-alives
 * carrying the job's state), Ray's WebSocket tail (text frames; keep-alives are pings), and Ray's
 * `{"logs": "..."}` answer, written piece by piece and bounded to the end of the log.
 *
 * Two views of one log: raysub's has everything, its own lines (marked `[raysub]`: setup output,
 * retries) included; Ray's is what a Ray job's driver log holds — Ray's `Running entrypoint for
 * job ...` line once the job has started, then the job's own output — without raysub's lines.
 */
import type { ServerResponse } from 'node:http';
import { StringDecoder } from 'node:string_decoder';
import type { WebSocket } from 'ws';
import type { LogOptions } from '../shared/config.js';
import { toRaysubError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import type { JobStatus, LogStreamLine, LogStreamRequest } from '../shared/protocol/index.js';
import { startOffset } from './logStart.js';
import type { Engine } from './engine.js';
import type { JobService } from './jobService.js';
import { LinePrefixer, followLogs, type LogFollowers } from './logFollower.js';
import type { LogStore } from './logStore.js';
import { rayHeader } from './rayVocabulary.js';

export interface LogServingContext {
  engine: Engine;
  jobs: JobService;
  logs: LogStore;
  followers: LogFollowers;
  logOptions: LogOptions;
}

/** What the serving functions log through (a request's logger). */
export type FollowLog = Pick<Logger, 'info' | 'warn'>;

const RAY_READ_BYTES = 1024 * 1024;


function jobChanges(engine: Engine, id: string): (fn: () => void) => () => void {
  return (fn) => {
    const onJob = (jobId: string): void => {
      if (jobId === id) fn();
    };
    engine.on('job', onJob);
    return () => engine.off('job', onJob);
  };
}

/** Resolve once `res` can take more (or the follower ended), so a slow reader never fills the head's memory. */
function drained(res: ServerResponse, signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = (): void => {
      res.off('drain', done);
      res.off('close', done);
      signal.removeEventListener('abort', done);
      resolve();
    };
    res.once('drain', done);
    res.once('close', done);
    signal.addEventListener('abort', done);
  });
}

/** Write `text`, then wait while `res` is full: a slow reader never fills the head's memory. */
export async function writeText(res: ServerResponse, text: string, signal: AbortSignal): Promise<void> {
  if (!res.write(text)) await drained(res, signal);
}

function stateLine(ctx: LogServingContext, id: string): Extract<LogStreamLine, { keepalive: true }> {
  const status = ctx.jobs.row(id).status;
  return { keepalive: true, status, queue: status === 'PENDING' ? ctx.jobs.queueOf(id) : null, keepalive_ms: ctx.logOptions.keepaliveMs };
}

/**
 * raysub's stream: one JSON object per line. Followers get the job's state at once and again
 * whenever it changes or nothing else was sent for a keep-alive interval, so a client can tell a
 * quiet job from a dead connection.
 */
export async function serveLogStream(ctx: LogServingContext, id: string, req: LogStreamRequest, res: ServerResponse, log: FollowLog): Promise<void> {
  const row = ctx.jobs.row(id);
  const follower = ctx.followers.start();
  const onClose = (): void => {
    if (!res.writableFinished) follower.abort();
  };
  res.once('close', onClose);
  // A deleted job's follower blocked on a reader that does not read would never notice: end it.
  const unwatch = ctx.logs.watch(id, (idx) => {
    if (idx === null && res.writableNeedDrain) follower.abort();
  });
  const { signal } = follower;
  try {
    res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-cache', 'x-accel-buffering': 'no' });
    res.flushHeaders();
    const send = (line: LogStreamLine): Promise<void> => writeText(res, JSON.stringify(line) + '\n', signal);
    if (req.follow) await send(stateLine(ctx, id));
    const from = startOffsets(ctx, id, row.parallel, req);
    if (req.tail !== undefined || req.since !== undefined) await send({ from });
    const status = (): JobStatus => ctx.jobs.row(id).status;
    const items = followLogs(ctx.logs, id, {
      follow: req.follow,
      signal,
      taskCount: row.parallel,
      from,
      task: req.task,
      timestamps: req.timestamps,
      keepaliveMs: ctx.logOptions.keepaliveMs,
      status,
      onJobChange: jobChanges(ctx.engine, id),
    });
    for await (const item of items) {
      if (item.kind === 'piece') await send({ task: item.task, stream: item.stream, data: item.text, offset: item.offset, ...(item.time === undefined ? {} : { time: item.time }) });
      else await send(stateLine(ctx, id));
    }
    if (!signal.aborted) res.end(JSON.stringify({ end: true, status: status() }) + '\n');
  } catch (err) {
    const e = toRaysubError(err);
    if (e.httpStatus >= 500) log.warn({ err, jobId: id }, 'log stream failed');
    else log.info({ code: e.code, jobId: id }, `log stream ended: ${e.message}`);
    if (!signal.aborted && !res.writableEnded) res.end(JSON.stringify(e.toJSON()) + '\n');
  } finally {
    unwatch();
    res.off('close', onClose);
    follower.release();
    if (!res.writableEnded) res.destroy();
  }
}

/** Each task's first byte to read: where the reader stands (`from`), else where `tail` and `since` put it. */
function startOffsets(ctx: LogServingContext, id: string, taskCount: number, req: LogStreamRequest): Record<string, number> {
  const from: Record<string, number> = { ...req.from };
  if (req.tail === undefined && req.since === undefined) return from;
  for (let idx = 0; idx < taskCount; idx++) {
    if (req.task !== undefined && idx !== req.task) continue;
    from[String(idx)] ??= startOffset(ctx.logs, id, idx, { tail: req.tail, since: req.since });
  }
  return from;
}

/** A ping's payload (at most 125 bytes): the job's status and, while it waits, its place and reason. */
function pingPayload(ctx: LogServingContext, id: string): Buffer {
  const s = stateLine(ctx, id);
  const base = { status: s.status, ...(s.queue ? { position: s.queue.position, reason: s.queue.reason } : {}) };
  let json = JSON.stringify(base);
  if (Buffer.byteLength(json) > 125 && s.queue) {
    const over = Buffer.byteLength(json) - 125;
    json = JSON.stringify({ ...base, reason: s.queue.reason.slice(0, Math.max(0, s.queue.reason.length - over - 3)) + '...' });
  }
  const buf = Buffer.from(json);
  return buf.length <= 125 ? buf : Buffer.from(JSON.stringify({ status: s.status }));
}

/**
 * Ray's tail: text frames of at most 20,000 characters, closed once the job is terminal and its log
 * fully sent. While the job is quiet the head sends pings (whose payload is the job's state):
 * every WebSocket client answers them by itself, and Ray's clients never show them as output.
 */
export function tailOverWebSocket(ctx: LogServingContext, socket: WebSocket, id: string, log: FollowLog): void {
  const follower = ctx.followers.start();
  const { signal } = follower;
  let lastPong = Date.now();
  const deadAfter = Math.max(60_000, 6 * ctx.logOptions.keepaliveMs);
  socket.on('pong', () => (lastPong = Date.now()));
  socket.on('close', follower.abort);
  socket.on('error', follower.abort);
  const unwatch = ctx.logs.watch(id, (idx) => {
    if (idx === null && socket.bufferedAmount > 0) socket.terminate();
  });
  const send = (text: string): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      // Resolves once the frame is handed to the socket: a slow reader slows the head down, never fills its memory.
      socket.send(text, (err) => (err ? reject(err) : resolve()));
    });
  let headerSent = false;
  /** Ray's first line, as soon as the job has started (before its first output). */
  const header = async (ran = false): Promise<void> => {
    if (headerSent) return;
    const text = rayHeader(ctx.jobs.row(id), ran);
    if (!text) return;
    headerSent = true;
    await send(text);
  };
  const run = async (): Promise<void> => {
    const row = ctx.jobs.row(id);
    const prefixer = row.parallel > 1 ? new LinePrefixer() : null;
    const items = followLogs(ctx.logs, id, {
      follow: true,
      signal,
      taskCount: row.parallel,
      keepaliveMs: ctx.logOptions.keepaliveMs,
      status: () => ctx.jobs.row(id).status,
      onJobChange: jobChanges(ctx.engine, id),
    });
    for await (const item of items) {
      if (item.kind === 'tick') await header();
      else if (item.stream !== 'system') await header(true);
      if (item.kind === 'tick') {
        if (Date.now() - lastPong > deadAfter) {
          log.info({ jobId: id }, 'a log tail stopped answering pings; closing it');
          socket.terminate();
          return;
        }
        socket.ping(pingPayload(ctx, id));
        continue;
      }
      if (item.stream === 'system') continue;
      const text = prefixer ? prefixer.push(item) : item.text;
      for (let i = 0; i < text.length; i += 20_000) await send(text.slice(i, i + 20_000));
    }
    const rest = prefixer?.flush();
    if (rest && !signal.aborted) await send(rest);
    if (!signal.aborted) await header();
    if (!signal.aborted) socket.close(1000, 'job finished');
  };
  run()
    .catch((err: unknown) => {
      if (signal.aborted) return;
      const e = toRaysubError(err);
      if (e.httpStatus >= 500) log.warn({ err, jobId: id }, 'log tail failed');
      socket.close(e.httpStatus === 404 ? 1000 : 1011, e.message.slice(0, 120));
    })
    .finally(() => {
      unwatch();
      follower.release();
    });
}

/** Which bytes of each task's log Ray's answer holds: everything, or the end of each within the cap. */
function rayPlan(sizes: number[], max: number): { from: number[]; truncated: boolean } {
  const total = sizes.reduce((a, b) => a + b, 0);
  if (total <= max) return { from: sizes.map(() => 0), truncated: false };
  const share = Math.floor(max / Math.max(1, sizes.filter((s) => s > 0).length));
  return { from: sizes.map((s) => Math.max(0, s - share)), truncated: true };
}

/**
 * Ray's `GET /api/jobs/{id}/logs`: `{"logs": "..."}`, written piece by piece so the head never
 * holds the log in memory. A log longer than the cap is answered with its end (for an array job,
 * the end of each task's log), from a line start, after a marker line that says so. `view` is
 * Ray's (its header, no raysub lines), or raysub's (everything the log holds).
 */
export async function serveRayLogs(ctx: LogServingContext, id: string, res: ServerResponse, log: FollowLog, view: 'ray' | 'raysub' = 'ray'): Promise<void> {
  const row = ctx.jobs.row(id);
  const { logs } = ctx;
  const sizes = Array.from({ length: row.parallel }, (_, i) => logs.size(id, i));
  const plan = rayPlan(sizes, ctx.logOptions.rayResponseMaxBytes);
  const ac = new AbortController();
  const onClose = (): void => {
    if (!res.writableFinished) ac.abort();
  };
  res.once('close', onClose);
  const put = (text: string): Promise<void> => writeText(res, JSON.stringify(text).slice(1, -1), ac.signal);
  try {
    res.writeHead(200, { 'content-type': 'application/json; charset=utf-8' });
    await writeText(res, '{"logs": "', ac.signal);
    if (plan.truncated) {
      const total = sizes.reduce((a, b) => a + b, 0);
      await put(
        `[raysub] this log has ${total} bytes; this answer holds only the last ${ctx.logOptions.rayResponseMaxBytes} bytes` +
          `${row.parallel > 1 ? ' (split between the tasks)' : ''}. The whole log: raysub job logs ${id}, or GET /api/jobs/${id}/logs/stream\n`,
      );
    }
    // Ray's first line comes before the job's first output (which may reach the head before its start).
    let headerDone = view !== 'ray' || plan.truncated;
    const text = async (t: string): Promise<void> => {
      if (!t) return;
      if (!headerDone) {
        headerDone = true;
        await put(rayHeader(row, true));
      }
      await put(t);
    };
    const prefixer = row.parallel > 1 ? new LinePrefixer() : null;
    for (let task = 0; task < row.parallel && !ac.signal.aborted; task++) {
      const decoder = new StringDecoder('utf8');
      const end = sizes[task] ?? 0;
      let at = plan.from[task] ?? 0;
      let skipToLine = at > 0;
      while (at < end && !ac.signal.aborted) {
        const segments = logs.read(id, task, at, Math.min(RAY_READ_BYTES, end - at));
        if (segments.length === 0) break;
        at += segments.reduce((n, s) => n + s.data.length, 0);
        let chunk = Buffer.concat(segments.filter((s) => view === 'raysub' || s.stream !== 'system').map((s) => s.data));
        if (skipToLine) {
          // Start at a line, unless the part sent is all one line.
          const nl = chunk.indexOf(0x0a);
          if (nl >= 0 && nl < chunk.length - 1) chunk = chunk.subarray(nl + 1);
          skipToLine = false;
        }
        const decoded = decoder.write(chunk);
        await text(prefixer ? prefixer.push({ task, text: decoded }) : decoded);
      }
      const rest = decoder.end();
      if (rest) await text(prefixer ? prefixer.push({ task, text: rest }) : rest);
      if (prefixer) await text(prefixer.flush());
    }
    if (!headerDone && !ac.signal.aborted) await put(rayHeader(row));
    if (!ac.signal.aborted) res.end('"}');
  } catch (err) {
    log.warn({ err, jobId: id }, 'sending a log failed');
  } finally {
    res.off('close', onClose);
    if (!res.writableEnded) res.destroy();
  }
}
