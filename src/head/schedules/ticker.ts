/**
 * The cron ticker: one timer, armed for the earliest due time of any active schedule (and at
 * least every 30 s, so a clock change is noticed). It runs on the head's real clock.
 */
import { guarded } from '../../shared/boundary.js';
import type { Logger } from '../../shared/log.js';
import type { ScheduleService } from './service.js';

type TickerState = 'idle' | 'running' | 'closed';

/** Longest sleep between checks, so a changed wall clock is never trusted for long. */
const MAX_SLEEP_MS = 30_000;
/** A schedule whose fire failed unexpectedly is retried after this long, without holding up others. */
const RETRY_AFTER_MS = 5_000;

export class ScheduleTicker {
  private state: TickerState = 'idle';
  private timer: NodeJS.Timeout | null = null;
  /** When the ticker started: due times before it were missed while the head was down. */
  private startedAt = 0;
  private readonly retryAt = new Map<string, number>();

  constructor(
    private readonly schedules: ScheduleService,
    private readonly log: Logger,
  ) {
    schedules.on('change', () => this.arm());
  }

  /** Start ticking; what fell due while the head was down is handled at once. Idempotent. */
  start(): void {
    if (this.state !== 'idle') return;
    this.state = 'running';
    this.startedAt = Date.now();
    this.tick();
  }

  /** Stop ticking. Idempotent; a fire in progress is one synchronous transaction, never cut. */
  shutdown(): void {
    this.state = 'closed';
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  /** Arm the timer for the earliest due time; if even that fails, try again after a while. */
  private arm(): void {
    if (this.state !== 'running') return;
    if (this.timer) clearTimeout(this.timer);
    try {
      this.armAt(this.nextDelay(Date.now()));
    } catch (err) {
      this.log.error({ err }, 'cron ticker: cannot read the schedules; retrying soon');
      this.armAt(RETRY_AFTER_MS);
    }
  }

  private armAt(delay: number): void {
    this.timer = setTimeout(guarded(this.log, 'cron tick', () => this.tick()), delay);
    this.timer.unref();
  }

  private nextDelay(now: number): number {
    let delay = MAX_SLEEP_MS;
    const future = this.schedules.repo.earliestAfter(now);
    if (future !== null) delay = Math.min(delay, future - now);
    for (const at of this.retryAt.values()) delay = Math.min(delay, Math.max(10, at - now));
    // Something due that is not backing off (e.g. armed from an API call just as it fell due).
    if (this.schedules.repo.due(now).some((r) => !this.retryAt.has(r.name))) delay = 0;
    return delay;
  }

  private tick(): void {
    if (this.state !== 'running') return;
    try {
      this.fireDue(Date.now());
    } catch (err) {
      this.log.error({ err }, 'cron ticker: a tick failed');
    }
    this.arm();
  }

  private fireDue(now: number): void {
    for (const [name, at] of this.retryAt) if (at <= now) this.retryAt.delete(name);
    for (const row of this.schedules.repo.due(now)) {
      const retryAt = this.retryAt.get(row.name);
      if (retryAt !== undefined && retryAt > now) continue;
      try {
        this.schedules.fireDue(row, now, this.startedAt);
        this.retryAt.delete(row.name);
      } catch (err) {
        this.log.error({ err, schedule: row.name }, 'firing a schedule failed; retrying soon');
        this.retryAt.set(row.name, now + RETRY_AFTER_MS);
      }
    }
  }
}
