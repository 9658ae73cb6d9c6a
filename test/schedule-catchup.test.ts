/**
 * Schedules across head downtime and crashes, on the real clock: one catch-up run at most (never
 * a burst), the starting deadline, and fires that are neither lost nor doubled by a SIGKILL.
 */
import { describe, expect, it } from 'vitest';
import type { ScheduleRun } from '../src/shared/protocol/index.js';
import { runCli, startHead, waitFor, type TestHead } from './helpers/cluster.js';

async function create(head: TestHead, args: string[]): Promise<void> {
  const r = await runCli(['schedule', 'create', ...args], { env: head.env });
  expect(r.code, r.stderr).toBe(0);
}

const startedRuns = (runs: ScheduleRun[]) => runs.filter((r) => r.action === 'started');

/** Let the clock pass a point (a condition, not a fixed sleep). */
const clockPasses = (at: number) => waitFor(() => Date.now() > at, { what: 'the clock to pass a due time', intervalMs: 100 });

describe('schedules across head downtime', () => {
  it('starts one catch-up run, not a burst, after the head was stopped across several due times', async () => {
    const head = await startHead({ numCpus: 2 });
    await create(head, ['every2', '--cron', '*/2 * * * * *', '--entrypoint-num-cpus', '0', '--', 'echo', 'hi']);
    await waitFor(async () => startedRuns(await head.client.scheduleRuns('every2')).length >= 1, { what: 'a first run' });
    await head.stop();
    const stoppedAt = Date.now();
    await clockPasses(stoppedAt + 7000); // at least three due times pass while the head is down
    const restartAt = Date.now();
    const again = await head.restart();
    const upAt = Date.now();

    // After the catch-up, it fires on schedule again.
    const runs = await waitFor(async () => {
      const r = await again.client.scheduleRuns('every2', 100);
      return r.some((x) => x.trigger === 'cron' && x.scheduled_at > upAt) ? r : null;
    }, { what: 'a regular run after the restart' });
    const catchUps = runs.filter((r) => r.trigger === 'catch-up');
    expect(catchUps).toHaveLength(1);
    const [catchUp] = catchUps;
    expect(catchUp).toMatchObject({ action: 'started' });
    // It is the latest due time before the head came back, started as soon as it came back.
    expect(catchUp!.scheduled_at).toBeGreaterThan(restartAt - 2000);
    expect(catchUp!.scheduled_at).toBeLessThanOrEqual(upAt);
    expect(catchUp!.fired_at - catchUp!.scheduled_at).toBeLessThan(upAt - restartAt + 2000);
    // Every other due time during the outage is recorded once, as missed, and started nothing.
    const after = startedRuns(runs)
      .filter((r) => r.scheduled_at > stoppedAt)
      .sort((a, b) => a.scheduled_at - b.scheduled_at);
    expect(after[0]).toEqual(catchUp);
    // Then the regular due times, each once, starting with the one right after the catch-up.
    after.slice(1).forEach((r, i) => expect(r).toMatchObject({ trigger: 'cron', scheduled_at: catchUp!.scheduled_at + 2000 * (i + 1) }));
    const missed = runs.filter((r) => r.action === 'missed');
    expect(missed).toHaveLength(1);
    const count = Number(/^(\d+) runs due from/.exec(missed[0]!.detail ?? '')?.[1]);
    expect(count).toBeGreaterThanOrEqual(2);
    expect(missed[0]!.detail).toMatch(/not started: at most one catch-up run is started$/);
    // Every started run has exactly one job, and no job exists without its run.
    const { jobs } = await again.client.listJobs({ schedule: 'every2' });
    expect(jobs.map((j) => j.submission_id).sort()).toEqual(startedRuns(runs).map((r) => r.job_id).sort());
    await again.client.setSchedulePaused('every2', true);
  });

  it('starts nothing when the missed run is past its starting deadline', async () => {
    const head = await startHead({ numCpus: 1 });
    // One due time, 12 s from now, wall-clock fields in UTC.
    const due = Math.ceil(Date.now() / 1000) * 1000 + 12_000;
    const d = new Date(due);
    const cron = `${d.getUTCSeconds()} ${d.getUTCMinutes()} ${d.getUTCHours()} ${d.getUTCDate()} ${d.getUTCMonth() + 1} *`;
    await create(head, ['once', '--cron', cron, '--starting-deadline', '1', '--', 'true']);
    expect((await head.client.getSchedule('once')).next_run_at).toBe(due);
    await head.stop();
    await clockPasses(due + 2500);
    const again = await head.restart();
    const runs = await waitFor(async () => {
      const r = await again.client.scheduleRuns('once');
      return r.length ? r : null;
    }, { what: 'the missed run to be recorded' });
    expect(runs).toHaveLength(1);
    expect(runs[0]).toMatchObject({ action: 'missed', scheduled_at: due, job_id: null });
    expect(runs[0]!.detail).toMatch(/^1 run due from .* not started: more than the starting deadline \(1s\) late$/);
    expect((await again.client.listJobs({ schedule: 'once' })).jobs).toEqual([]);
    const info = await again.client.getSchedule('once');
    expect(info.next_run_at).toBeGreaterThan(due + 300 * 24 * 3600_000); // next year
  });

  it('never loses or doubles a fire when the head is SIGKILLed', async () => {
    let head = await startHead({ numCpus: 2 });
    // Every fire's job is kept, so each can be checked (by default a schedule keeps its last 3
    // succeeded jobs, and a run of 4 or more successes would lose the oldest to that limit).
    await create(head, ['crashy', '--cron', '* * * * * *', '--successful-jobs-history-limit', '1000', '--failed-jobs-history-limit', '1000', '--entrypoint-num-cpus', '0', '--', 'true']);
    for (let round = 0; round < 2; round++) {
      const seen = startedRuns(await head.client.scheduleRuns('crashy', 1000)).length;
      await waitFor(async () => startedRuns(await head.client.scheduleRuns('crashy', 1000)).length >= seen + 2, { what: 'two more runs' });
      await head.kill('SIGKILL');
      head = await head.restart();
    }
    await waitFor(async () => (await head.client.scheduleRuns('crashy', 1000)).some((r) => r.trigger === 'cron' && r.fired_at > Date.now() - 1500), {
      what: 'a regular run after the last restart',
    });
    await head.client.setSchedulePaused('crashy', true);
    const runs = await head.client.scheduleRuns('crashy', 1000);
    const started = startedRuns(runs);
    // No due time was fired twice...
    expect(new Set(started.map((r) => r.scheduled_at)).size).toBe(started.length);
    // ...and each fire is whole: its job exists, and no job exists without its run.
    const { jobs } = await head.client.listJobs({ schedule: 'crashy' });
    expect(jobs.map((j) => j.submission_id).sort()).toEqual(started.map((r) => r.job_id).sort());
    // ...and none was lost: every second from the first run to the last is started, caught up or missed.
    const first = Math.min(...started.map((r) => r.scheduled_at));
    const last = Math.max(...started.map((r) => r.scheduled_at));
    let accounted = started.length;
    for (const m of runs.filter((r) => r.action === 'missed')) accounted += Number(/^(\d+) run/.exec(m.detail ?? '')?.[1]);
    expect(accounted).toBe((last - first) / 1000 + 1);
  });
});
