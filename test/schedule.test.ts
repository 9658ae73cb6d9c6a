/**
 * Schedules end to end: a real head on the real clock fires them; the CLI creates and manages
 * them. Timing is asserted from the fire times the head records, with tolerances.
 */
import { describe, expect, it } from 'vitest';
import { scheduleInfoSchema, scheduleListSchema, scheduleRunListSchema, scheduleRunSchema, type ScheduleRun } from '../src/shared/protocol/index.js';
import { runCli, startHead, waitFor, type TestHead } from './helpers/cluster.js';

/** Run the CLI with --json and parse its answer (failing with its stderr if it did not exit 0). */
async function cliJson(head: TestHead, args: string[]): Promise<unknown> {
  const dashes = args.indexOf('--');
  const withJson = dashes < 0 ? [...args, '--json'] : [...args.slice(0, dashes), '--json', ...args.slice(dashes)];
  const r = await runCli(withJson, { env: head.env });
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout);
}

const started = (runs: ScheduleRun[]) => runs.filter((r) => r.action === 'started').sort((a, b) => a.scheduled_at - b.scheduled_at);

describe('schedules', () => {
  it('fires a schedule with a seconds field on time, run after run', async () => {
    const head = await startHead({ numCpus: 2 });
    const info = scheduleInfoSchema.parse(
      // Every run's job is looked at below: the history limit keeps them all.
      await cliJson(head, ['schedule', 'create', 'tick', '--cron', '*/2 * * * * *', '--successful-jobs-history-limit', '100', '--entrypoint-num-cpus', '0', '--', 'echo', 'tick']),
    );
    expect(info).toMatchObject({ name: 'tick', cron: '*/2 * * * * *', timezone: 'UTC', concurrency: 'allow', suspended: false, last_run: null });
    expect(info.next_run_at! % 2000).toBe(0);

    const runs = await waitFor(async () => {
      const r = started(await head.client.scheduleRuns('tick'));
      return r.length >= 4 ? r : null;
    }, { what: 'four runs', timeoutMs: 20_000 });
    for (const [i, run] of runs.entries()) {
      expect(run).toMatchObject({ trigger: 'cron', job_id: `tick-${run.scheduled_at / 1000}`, replaced: [] });
      expect(run.fired_at - run.scheduled_at, `run ${i} fired late`).toBeGreaterThanOrEqual(0);
      expect(run.fired_at - run.scheduled_at, `run ${i} fired late`).toBeLessThan(1000);
      if (i > 0) expect(run.scheduled_at - runs[i - 1]!.scheduled_at).toBe(2000); // none missed, none doubled
    }
    expect(runs[0]!.scheduled_at).toBe(info.next_run_at);
    for (const run of runs) {
      const job = await head.client.getJob(run.job_id!);
      expect(job.raysub.schedule).toBe('tick');
      expect(job.metadata).toMatchObject({ raysub_schedule: 'tick', raysub_scheduled_at: new Date(run.scheduled_at).toISOString() });
      expect(job.raysub.created_at - run.scheduled_at).toBeLessThan(1000);
    }
    await waitFor(async () => (await head.client.getJob(runs[0]!.job_id!)).status === 'SUCCEEDED', { what: 'the first run to succeed' });
    expect(await head.client.getLogs(runs[0]!.job_id!)).toBe('tick\n');

    // The read commands' JSON.
    const list = scheduleListSchema.parse(await cliJson(head, ['schedule', 'list']));
    expect(list.schedules.map((s) => s.name)).toEqual(['tick']);
    expect(Object.keys(list.schedules[0]!).sort()).toEqual(
      [
        'active_jobs',
        'concurrency',
        'created_at',
        'cron',
        'failed_jobs_history_limit',
        'job',
        'last_run',
        'name',
        'next_run_at',
        'starting_deadline_s',
        'successful_jobs_history_limit',
        'suspended',
        'timezone',
        'updated_at',
      ],
    );
    const history = scheduleRunListSchema.parse(await cliJson(head, ['schedule', 'runs', 'tick', '--limit', '2']));
    expect(history.runs).toHaveLength(2);
    expect(Object.keys(history.runs[0]!).sort()).toEqual(
      ['action', 'detail', 'fired_at', 'job_exit_code', 'job_id', 'job_status', 'replaced', 'schedule', 'scheduled_at', 'seq', 'trigger'],
    );
    const jobs = JSON.parse((await runCli(['job', 'list', '--schedule', 'tick', '--json'], { env: head.env })).stdout) as { jobs: { raysub: { schedule: string } }[] };
    expect(jobs.jobs.length).toBeGreaterThanOrEqual(4);
    expect(jobs.jobs.every((j) => j.raysub.schedule === 'tick')).toBe(true);
    const text = await runCli(['schedule', 'list'], { env: head.env });
    expect(text.stdout).toMatch(/^NAME\s+CRON\s+TIMEZONE\s+CONCURRENCY\s+STATE\s+NEXT RUN\s+LAST RUN\s+LAST STATUS\s+ACTIVE\ntick\s+\*\/2 \* \* \* \* \*\s+UTC\s+allow\s+active\s+(in \d+s|due now)/);
  });

  it('pauses without firing, and resumes from the next due time without catching up', async () => {
    const head = await startHead({ numCpus: 2 });
    await cliJson(head, ['schedule', 'create', 'every-second', '--cron', '* * * * * *', '--entrypoint-num-cpus', '0', '--', 'true']);
    await waitFor(async () => started(await head.client.scheduleRuns('every-second')).length >= 2, { what: 'two runs' });

    const paused = scheduleInfoSchema.parse(await cliJson(head, ['schedule', 'pause', 'every-second']));
    expect(paused).toMatchObject({ suspended: true, next_run_at: null });
    // Let three due times pass while paused (a condition on the clock, not a fixed sleep).
    await waitFor(() => Date.now() > paused.updated_at + 3500, { what: 'three due times to pass', intervalMs: 100 });
    const whilePaused = await head.client.scheduleRuns('every-second');
    expect(whilePaused.filter((r) => r.fired_at > paused.updated_at)).toEqual([]);

    const resumed = scheduleInfoSchema.parse(await cliJson(head, ['schedule', 'resume', 'every-second']));
    expect(resumed.suspended).toBe(false);
    expect(resumed.next_run_at).toBeGreaterThan(resumed.updated_at);
    expect(resumed.next_run_at! - resumed.updated_at).toBeLessThanOrEqual(1000);
    const after = await waitFor(async () => {
      const runs = (await head.client.scheduleRuns('every-second')).filter((r) => r.fired_at > paused.updated_at);
      return runs.length >= 2 ? runs : null;
    }, { what: 'runs after resuming' });
    // Nothing from the paused stretch: no catch-up run, no "missed" entry, first run at the new due time.
    expect(after.every((r) => r.action === 'started' && r.trigger === 'cron' && r.scheduled_at >= resumed.next_run_at!)).toBe(true);
    expect(Math.min(...after.map((r) => r.scheduled_at))).toBe(resumed.next_run_at);
    // Pausing twice is harmless.
    expect((await runCli(['schedule', 'pause', 'every-second'], { env: head.env })).code).toBe(0);
    expect((await runCli(['schedule', 'pause', 'every-second'], { env: head.env })).code).toBe(0);
  });

  it('triggers a run now (even while paused), idempotently for a retried request', async () => {
    const head = await startHead({ numCpus: 2 });
    await cliJson(head, ['schedule', 'create', 'yearly', '--cron', '@yearly', '--suspend', '--', 'echo', 'by hand']);
    const run = scheduleRunSchema.parse(await cliJson(head, ['schedule', 'trigger', 'yearly', '--submission-id', 'yearly-manual-1']));
    expect(run).toMatchObject({ schedule: 'yearly', trigger: 'manual', action: 'started', job_id: 'yearly-manual-1' });
    expect(run.fired_at).toBe(run.scheduled_at);
    // The same request again (a CLI retry) returns the same run, and no second job.
    const again = scheduleRunSchema.parse(await cliJson(head, ['schedule', 'trigger', 'yearly', '--submission-id', 'yearly-manual-1']));
    expect(again.seq).toBe(run.seq);
    const wait = await runCli(['job', 'wait', 'yearly-manual-1'], { env: head.env });
    expect(wait.code).toBe(0);
    const job = await head.client.getJob('yearly-manual-1');
    expect(job.metadata?.raysub_schedule).toBe('yearly');
    expect(await head.client.getLogs('yearly-manual-1')).toBe('by hand\n');

    const plain = await runCli(['schedule', 'trigger', 'yearly'], { env: head.env });
    expect(plain.code).toBe(0);
    expect(plain.stdout).toMatch(/^yearly-manual-\d+\n$/);
    const runs = await head.client.scheduleRuns('yearly');
    expect(runs.map((r) => r.trigger)).toEqual(['manual', 'manual']);
    const info = await head.client.getSchedule('yearly');
    expect(info).toMatchObject({ suspended: true, next_run_at: null });
    expect(info.last_run?.job_id).toBe(plain.stdout.trim());
    const get = await runCli(['schedule', 'get', 'yearly'], { env: head.env });
    expect(get.stdout).toMatch(/Schedule\s+yearly\nCron\s+@yearly \(UTC\)\nConcurrency allow\nState\s+paused/);
    expect((await runCli(['schedule', 'trigger', 'nope'], { env: head.env })).code).toBe(65);
  });

  it('deletes a schedule: it fires no more, its jobs stay', async () => {
    const head = await startHead({ numCpus: 2 });
    await cliJson(head, ['schedule', 'create', 'doomed', '--cron', '* * * * * *', '--entrypoint-num-cpus', '0', '--', 'true']);
    await waitFor(async () => started(await head.client.scheduleRuns('doomed')).length >= 1, { what: 'a run' });
    expect(await cliJson(head, ['schedule', 'delete', 'doomed'])).toEqual({ name: 'doomed', deleted: true });
    const deletedAt = Date.now();
    const jobsAtDelete = (await head.client.listJobs({ schedule: 'doomed' })).jobs.length;
    expect(jobsAtDelete).toBeGreaterThanOrEqual(1);

    const get = await runCli(['schedule', 'get', 'doomed'], { env: head.env });
    expect(get.code).toBe(65);
    expect(get.stderr).toContain('no schedule named "doomed"');
    const res = await fetch(`${head.url}/api/schedules/doomed`, { headers: { authorization: `Bearer ${head.token}` } });
    expect(res.status).toBe(404);
    expect(await res.json()).toMatchObject({ error: { code: 'SCHEDULE_NOT_FOUND' } });
    await waitFor(() => Date.now() > deletedAt + 2500, { what: 'two due times to pass', intervalMs: 100 });
    expect((await head.client.listJobs({ schedule: 'doomed' })).jobs.length).toBe(jobsAtDelete);
    expect((await runCli(['schedule', 'delete', 'doomed'], { env: head.env })).code).toBe(65);
  });

  it('reads the expression in its time zone: a fixed local instant fires at the right moment', async () => {
    const head = await startHead({ numCpus: 2 });
    // An instant a few seconds ahead, written as wall-clock fields in Kolkata (UTC+05:30).
    const instant = Math.ceil(Date.now() / 1000) * 1000 + 8000; // room for the CLI on a busy machine
    const f = Object.fromEntries(
      new Intl.DateTimeFormat('en-GB', { timeZone: 'Asia/Kolkata', hourCycle: 'h23', second: 'numeric', minute: 'numeric', hour: 'numeric', day: 'numeric', month: 'numeric' })
        .formatToParts(new Date(instant))
        .map((p) => [p.type, Number(p.value)]),
    ) as Record<string, number>;
    const cron = `${f.second} ${f.minute} ${f.hour} ${f.day} ${f.month} *`;
    const kolkata = scheduleInfoSchema.parse(await cliJson(head, ['schedule', 'create', 'kolkata', '--cron', cron, '--timezone', 'Asia/Kolkata', '--', 'true']));
    expect(kolkata.next_run_at).toBe(instant);
    // The same wall-clock fields read in UTC are 5h30m later.
    const utc = scheduleInfoSchema.parse(await cliJson(head, ['schedule', 'create', 'utc', '--cron', cron, '--', 'true']));
    expect(utc.next_run_at! - instant).toBe(5.5 * 3600_000);

    const [run] = await waitFor(async () => {
      const r = started(await head.client.scheduleRuns('kolkata'));
      return r.length ? r : null;
    }, { what: 'the Kolkata run' });
    expect(run!.scheduled_at).toBe(instant);
    expect(run!.fired_at - instant).toBeLessThan(1000);
    expect(await head.client.getJob(run!.job_id!)).toMatchObject({ metadata: { raysub_scheduled_at: new Date(instant).toISOString() } });
    const get = await runCli(['schedule', 'get', 'utc'], { env: head.env });
    expect(get.stdout).toContain(`Cron        ${cron} (UTC)`);
  });

  it('rejects bad expressions and zones at create time with the reason, and conflicting redefinitions', async () => {
    const head = await startHead({ numCpus: 1 });
    const badCron = await runCli(['schedule', 'create', 'bad', '--cron', '61 * * * *', '--', 'true'], { env: head.env });
    expect(badCron.code).toBe(64);
    expect(badCron.stderr).toMatch(/cron: invalid cron expression "61 \* \* \* \*": .*minute: 61/i);
    const badZone = await runCli(['schedule', 'create', 'bad', '--cron', '@daily', '--timezone', 'Europe/Atlantis', '--', 'true'], { env: head.env });
    expect(badZone.code).toBe(64);
    expect(badZone.stderr).toContain('unknown time zone "Europe/Atlantis"');
    const badName = await runCli(['schedule', 'create', 'no spaces', '--cron', '@daily', '--', 'true'], { env: head.env });
    expect(badName.code).toBe(64);

    // The head checks too, for clients other than the CLI.
    const post = (body: unknown) =>
      fetch(`${head.url}/api/schedules`, { method: 'POST', headers: { authorization: `Bearer ${head.token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const res = await post({ name: 'bad', cron: '*/5 * * * * * *', job: { entrypoint: 'true' } });
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({ error: { code: 'INVALID_SCHEDULE', message: expect.stringMatching(/^cron: .*has 7 fields/) as unknown } });
    const zone = await post({ name: 'bad', cron: '@daily', timezone: 'Mars/Olympus_Mons', job: { entrypoint: 'true' } });
    expect(await zone.json()).toMatchObject({ error: { code: 'INVALID_SCHEDULE', message: expect.stringContaining('unknown time zone') as unknown } });
    const pkg = await post({ name: 'bad', cron: '@daily', job: { entrypoint: 'true', runtime_env: { working_dir: 'gcs://_raysub_pkg_missing.tar.gz' } } });
    expect(await pkg.json()).toMatchObject({ error: { code: 'INVALID_RUNTIME_ENV' } });
    expect((await head.client.listSchedules()).length).toBe(0);

    // The same definition again is fine (a retried or re-run deploy); a different one needs --update.
    const args = ['schedule', 'create', 'nightly', '--cron', '0 2 * * *', '--timezone', 'Europe/Berlin', '--', 'echo', 'v1'];
    const first = scheduleInfoSchema.parse(await cliJson(head, args));
    expect(scheduleInfoSchema.parse(await cliJson(head, args))).toMatchObject({ created_at: first.created_at, next_run_at: first.next_run_at });
    const changed = await runCli(['schedule', 'create', 'nightly', '--cron', '0 3 * * *', '--', 'echo', 'v2'], { env: head.env });
    expect(changed.code).toBe(65);
    expect(changed.stderr).toContain('already exists with a different definition; use `raysub schedule create --update`');
    const updated = scheduleInfoSchema.parse(await cliJson(head, ['schedule', 'create', 'nightly', '--update', '--cron', '0 3 * * *', '--', 'echo', 'v2']));
    expect(updated).toMatchObject({ cron: '0 3 * * *', timezone: 'UTC', created_at: first.created_at, job: { entrypoint: 'echo v2' } });
    expect(new Date(updated.next_run_at!).getUTCHours()).toBe(3);
  });
});
