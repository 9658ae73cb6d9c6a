/**
 * Cron expressions as raysub reads them, on top of croner: 5 fields, or 6 with a leading seconds
 * field, named days and months, `@daily`-style aliases, IANA time zones with croner's DST rules.
 * The head fires with it and the CLI checks with it, so both agree on what an expression means.
 */
import { Cron } from 'croner';

export interface CronSchedule {
  readonly expression: string;
  readonly timezone: string;
  /** The first due time strictly after `ms` (epoch ms), or null if there is none. */
  nextAfter(ms: number): number | null;
  /** The latest due time at or before `ms`, or null if there is none. */
  latestAtOrBefore(ms: number): number | null;
}

export class CronError extends Error {
  override readonly name = 'CronError';
}

/** Check an IANA time zone name with the runtime's own time-zone database. */
export function checkTimeZone(tz: string): void {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
  } catch {
    throw new CronError(`unknown time zone "${tz}" (use an IANA name such as "Europe/Berlin" or "UTC")`);
  }
}

function clean(message: string): string {
  // croner prefixes its messages with its class names; keep the reason.
  return message.replace(/^Cron(Pattern|Date)?:\s*/, '');
}

/** Compile an expression in a time zone; throws CronError with the reason if either is invalid. */
export function compileCron(expression: string, timezone: string): CronSchedule {
  const expr = expression.trim();
  checkTimeZone(timezone);
  const fields = expr.split(/\s+/).filter(Boolean);
  if (!expr.startsWith('@') && (fields.length < 5 || fields.length > 6)) {
    throw new CronError(
      `"${expr}" has ${fields.length} field${fields.length === 1 ? '' : 's'}; use 5 (minute hour day month weekday), 6 (with a leading seconds field) or an alias such as @daily`,
    );
  }
  let cron: Cron;
  try {
    cron = new Cron(expr, { timezone, paused: true, mode: '5-or-6-parts' });
    // Evaluating once surfaces errors croner only detects when computing a date.
    cron.nextRun(new Date());
  } catch (err) {
    throw new CronError(`invalid cron expression "${expr}": ${clean(err instanceof Error ? err.message : String(err))}`);
  }
  return {
    expression: expr,
    timezone,
    nextAfter(ms) {
      return cron.nextRun(new Date(ms))?.getTime() ?? null;
    },
    latestAtOrBefore(ms) {
      // previousRuns looks strictly before its reference, so step one millisecond past `ms`.
      return cron.previousRuns(1, new Date(ms + 1))[0]?.getTime() ?? null;
    },
  };
}

/** Format an instant as local wall-clock time in a zone: "2026-03-29 03:00:00 CEST". */
export function formatInZone(ms: number, timezone: string): string {
  const parts = Object.fromEntries(
    new Intl.DateTimeFormat('en-GB', {
      timeZone: timezone,
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
      hourCycle: 'h23',
      timeZoneName: 'short',
    })
      .formatToParts(new Date(ms))
      .map((p) => [p.type, p.value]),
  );
  return `${parts.year}-${parts.month}-${parts.day} ${parts.hour}:${parts.minute}:${parts.second} ${parts.timeZoneName}`;
}
