/**
 * Cron evaluation and the catch-up rule as pure functions of fixed instants. (The end-to-end
 * schedule tests run a real head on the real clock; these pin the calendar arithmetic.)
 */
import { describe, expect, it } from 'vitest';
import { planDue } from '../src/head/schedules/index.js';
import { compileCron, CronError, formatInZone } from '../src/shared/cron.js';
import { scheduleCreateRequestSchema } from '../src/shared/protocol/index.js';

const at = (iso: string) => Date.parse(iso);
const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

describe('cron expressions', () => {
  it('reads 5 fields, 6 with seconds, names and aliases', () => {
    expect(iso(compileCron('*/15 * * * * *', 'UTC').nextAfter(at('2026-01-01T00:00:07Z')))).toBe('2026-01-01T00:00:15.000Z');
    expect(iso(compileCron('30 9 * * MON-FRI', 'UTC').nextAfter(at('2026-01-02T10:00:00Z')))).toBe('2026-01-05T09:30:00.000Z'); // Fri → Mon
    expect(iso(compileCron('0 0 1 FEB *', 'UTC').nextAfter(at('2026-01-15T00:00:00Z')))).toBe('2026-02-01T00:00:00.000Z');
    expect(iso(compileCron('@daily', 'UTC').nextAfter(at('2026-01-01T12:00:00Z')))).toBe('2026-01-02T00:00:00.000Z');
    expect(iso(compileCron('@hourly', 'UTC').latestAtOrBefore(at('2026-01-01T12:00:00Z')))).toBe('2026-01-01T12:00:00.000Z');
  });

  it('reads the expression in its time zone, a fixed instant included', () => {
    // 09:30 in Kolkata (UTC+05:30) is 04:00 UTC; in New York in January (UTC-5) it is 14:30 UTC.
    expect(iso(compileCron('0 30 9 * * *', 'Asia/Kolkata').nextAfter(at('2026-01-01T00:00:00Z')))).toBe('2026-01-01T04:00:00.000Z');
    expect(iso(compileCron('30 9 * * *', 'America/New_York').nextAfter(at('2026-01-01T00:00:00Z')))).toBe('2026-01-01T14:30:00.000Z');
    expect(formatInZone(at('2026-01-01T04:00:00Z'), 'Asia/Kolkata')).toBe('2026-01-01 09:30:00 GMT+5:30');
  });

  it('handles DST: a skipped hour runs after the gap, a repeated hour runs once', () => {
    // Europe/Berlin springs forward at 02:00 on 2026-03-29: 02:30 does not exist that day.
    const spring = compileCron('30 2 * * *', 'Europe/Berlin');
    expect(iso(spring.nextAfter(at('2026-03-28T12:00:00Z')))).toBe('2026-03-29T01:00:00.000Z'); // 03:00 CEST
    expect(iso(spring.nextAfter(at('2026-03-29T01:00:00Z')))).toBe('2026-03-30T00:30:00.000Z'); // 02:30 CEST
    // It falls back at 03:00 on 2026-10-25: 02:30 happens twice, a fixed-time job runs at the first.
    const fall = compileCron('30 2 * * *', 'Europe/Berlin');
    expect(iso(fall.nextAfter(at('2026-10-24T12:00:00Z')))).toBe('2026-10-25T00:30:00.000Z');
    expect(iso(fall.nextAfter(at('2026-10-25T00:30:00Z')))).toBe('2026-10-26T01:30:00.000Z');
  });

  it('rejects bad expressions and zones with the reason', () => {
    expect(() => compileCron('61 * * * *', 'UTC')).toThrow(/invalid cron expression "61 \* \* \* \*".*minute/i);
    expect(() => compileCron('* * * *', 'UTC')).toThrow(/has 4 fields/);
    expect(() => compileCron('0 0 0 1 1 * 2030', 'UTC')).toThrow(/has 7 fields/);
    expect(() => compileCron('@reboot', 'UTC')).toThrow(CronError);
    expect(() => compileCron('0 * * * *', 'Mars/Olympus_Mons')).toThrow(/unknown time zone "Mars\/Olympus_Mons"/);
    const r = scheduleCreateRequestSchema.safeParse({ name: 'x', cron: '0 25 * * *', job: { entrypoint: 'true' } });
    expect(r.success).toBe(false);
    expect(r.error?.issues[0]).toMatchObject({ path: ['cron'], message: expect.stringMatching(/hour/i) as unknown });
  });
});

describe('the catch-up rule', () => {
  const every10 = compileCron('*/10 * * * * *', 'UTC');
  const t0 = at('2026-01-01T00:00:00Z');

  it('fires the one due time on time', () => {
    const plan = planDue(every10, t0, t0 + 3, null, t0 - 60_000);
    expect(plan).toEqual({ fire: { scheduledAt: t0, trigger: 'cron' }, missed: null, nextRunAt: t0 + 10_000 });
  });

  it('after downtime across several due times: one catch-up run (the latest), the rest recorded as missed', () => {
    const restart = t0 + 45_000; // due at 0, 10, 20, 30, 40 while down
    const plan = planDue(every10, t0, restart, null, restart);
    expect(plan.fire).toEqual({ scheduledAt: t0 + 40_000, trigger: 'catch-up' });
    expect(plan.missed).toMatchObject({ count: 4, capped: false, first: t0, last: t0 + 30_000 });
    expect(plan.nextRunAt).toBe(t0 + 50_000);
  });

  it('starts nothing when the latest due time is past the starting deadline', () => {
    const restart = t0 + 45_000;
    const plan = planDue(every10, t0, restart, 3, restart);
    expect(plan.fire).toBeNull();
    expect(plan.missed).toMatchObject({ count: 5, first: t0, last: t0 + 40_000 });
    expect(planDue(every10, t0, restart, 10, restart).fire).toEqual({ scheduledAt: t0 + 40_000, trigger: 'catch-up' });
  });

  it('caps the count of missed runs instead of walking a long outage', () => {
    const restart = t0 + 24 * 3600_000;
    const plan = planDue(every10, t0, restart, null, restart);
    expect(plan.fire?.scheduledAt).toBe(restart);
    expect(plan.missed).toMatchObject({ capped: true });
  });
});
