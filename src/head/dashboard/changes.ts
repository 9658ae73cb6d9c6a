/**
 * Server-sent events that tell open dashboards the jobs changed (a submission, a state change, a
 * deletion), so the table refreshes within a fraction of a second without polling 100,000 rows.
 * One check for all listeners, only while someone listens: the newest job's seq and the counts by
 * status (both read without scanning jobs) change whenever any job does.
 */
import type { ServerResponse } from 'node:http';
import { guarded } from '../../shared/boundary.js';
import { RaysubError } from '../../shared/errors.js';
import type { Logger } from '../../shared/log.js';
import type { JobCountsResponse } from '../../shared/protocol/index.js';
import type { Store } from '../db/index.js';
import type { Engine } from '../engine.js';

const CHECK_MS = 250;
/** Snapshots go out at most this often (they still arrive well within a second of a change). */
const MIN_GAP_MS = 200;
const KEEPALIVE_MS = 15_000;
/** Open event streams at most (each holds a connection; a dashboard holds one). */
export const MAX_LISTENERS = 256;

export function jobCounts(store: Pick<Store, 'jobs'>): JobCountsResponse {
  const counts: JobCountsResponse['counts'] = {};
  let total = 0;
  for (const c of store.jobs.countsByStatus()) {
    counts[c.status] = c.n;
    total += c.n;
  }
  return { counts, total, capped: false, max_seq: store.jobs.maxSeq() };
}

export class JobChanges {
  private readonly listeners = new Set<ServerResponse>();
  private timer: NodeJS.Timeout | null = null;
  private keepalive: NodeJS.Timeout | null = null;
  private last = '';
  private pending = false;
  private lastSent = 0;
  private readonly onJob = (): void => this.soon();

  constructor(
    private readonly engine: Engine,
    private readonly store: Pick<Store, 'jobs'>,
    private readonly log: Logger,
    /** Open streams at most (tests use fewer). */
    private readonly maxListeners = MAX_LISTENERS,
  ) {}

  get size(): number {
    return this.listeners.size;
  }

  /** Throws when no more streams may open (call before taking over the response). */
  admit(): void {
    if (this.listeners.size >= this.maxListeners) throw new RaysubError('TOO_MANY_REQUESTS', 'too many dashboards are open on this head', { retryable: true });
  }

  /** Serve one event stream on `res` until the client goes or the head closes. */
  listen(res: ServerResponse): void {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', 'x-accel-buffering': 'no' });
    res.write(`retry: 2000\n\n`);
    this.listeners.add(res);
    res.once('close', () => this.drop(res));
    // A write error ends the stream ('close' follows); it is never thrown at the head.
    res.on('error', (err) => this.log.debug({ err: err.message }, 'event stream ended with an error'));
    this.send(res, JSON.stringify(jobCounts(this.store)));
    if (this.listeners.size === 1) this.begin();
  }

  private begin(): void {
    this.last = JSON.stringify(jobCounts(this.store));
    this.engine.on('job', this.onJob);
    this.timer = setInterval(guarded(this.log, 'job change check', () => this.soon()), CHECK_MS);
    this.keepalive = setInterval(guarded(this.log, 'event stream keep-alive', () => this.ping()), KEEPALIVE_MS);
    this.timer.unref();
    this.keepalive.unref();
  }

  private drop(res: ServerResponse): void {
    this.listeners.delete(res);
    if (this.listeners.size > 0) return;
    this.engine.off('job', this.onJob);
    if (this.timer) clearInterval(this.timer);
    if (this.keepalive) clearInterval(this.keepalive);
    this.timer = this.keepalive = null;
  }

  /**
   * A job changed state: check soon rather than at the next tick, but at most once per MIN_GAP_MS,
   * so a burst of a thousand changes costs each open dashboard a few refreshes, not a thousand.
   */
  private soon(): void {
    if (this.pending) return;
    this.pending = true;
    const wait = Math.max(0, this.lastSent + MIN_GAP_MS - Date.now());
    setTimeout(
      guarded(this.log, 'job change check', () => {
        this.pending = false;
        this.check();
      }),
      wait,
    ).unref();
  }

  private check(): void {
    if (this.listeners.size === 0) return;
    const now = JSON.stringify(jobCounts(this.store));
    if (now === this.last) return;
    this.last = now;
    this.lastSent = Date.now();
    for (const res of this.listeners) this.send(res, now);
  }

  private send(res: ServerResponse, data: string): void {
    // A reader that does not keep up misses snapshots, never piles them up: the next one says it all.
    if (!this.open(res)) return;
    res.write(`event: jobs\ndata: ${data}\n\n`);
  }

  private ping(): void {
    for (const res of this.listeners) if (this.open(res)) res.write(': keep-alive\n\n');
  }

  /** Whether a stream takes a write now (not ended, not gone, not behind). */
  private open(res: ServerResponse): boolean {
    return !res.writableEnded && !res.destroyed && !res.writableNeedDrain;
  }

  /** End every stream (the head is closing). */
  closeAll(): void {
    for (const res of [...this.listeners]) res.end();
  }
}
