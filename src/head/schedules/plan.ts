/**
 * What to do when a schedule is due: a pure function of its state and the clock, so the catch-up
 * rule can be tested with fixed instants while the head itself always runs on the real clock.
 */
import type { CronSchedule } from '../../shared/cron.js';

export interface DuePlan {
  /** The one run to start now (the latest due time), or null if it is past its starting deadline. */
  fire: { scheduledAt: number; trigger: 'cron' | 'catch-up' } | null;
  /** Due times that are not started: every earlier one, plus the latest if it is too late. */
  missed: { count: number; capped: boolean; first: number; last: number } | null;
  /** The first due time strictly after `now`. */
  nextRunAt: number | null;
}

/** Counting missed runs stops here; a schedule every second that was down for a day says "100+". */
export const MISSED_COUNT_CAP = 100;

/**
 * Plan the run(s) due at `now` for a schedule whose stored next due time is `nextRunAt`.
 *
 * At most one run is started, never a burst: the latest due time at or before `now`, and only if
 * it is no more than `deadlineS` late (null: no limit). A run whose due time fell before the
 * ticker started (`startedAt`, i.e. while the head was down) is labelled a catch-up.
 */
export function planDue(cron: CronSchedule, nextRunAt: number, now: number, deadlineS: number | null, startedAt: number): DuePlan {
  const nextAfterNow = cron.nextAfter(now);
  const latest = cron.latestAtOrBefore(now);
  if (latest === null || latest < nextRunAt) {
    // Nothing is really due (the stored time was not a due time of this expression).
    return { fire: null, missed: null, nextRunAt: nextAfterNow };
  }
  let count = 0;
  let capped = false;
  for (let t: number | null = nextRunAt - 1; ; ) {
    t = cron.nextAfter(t);
    if (t === null || t > latest) break;
    if (++count >= MISSED_COUNT_CAP) {
      capped = true;
      break;
    }
  }
  const tooLate = deadlineS !== null && now - latest > deadlineS * 1000;
  const fire = tooLate ? null : { scheduledAt: latest, trigger: latest < startedAt ? ('catch-up' as const) : ('cron' as const) };
  const missedCount = fire ? count - 1 : count;
  const missed =
    missedCount > 0 || (capped && fire)
      ? { count: Math.max(missedCount, 1), capped, first: nextRunAt, last: fire ? (cron.latestAtOrBefore(latest - 1) ?? latest) : latest }
      : null;
  return { fire, missed, nextRunAt: nextAfterNow };
}
