/**
 * Concurrency policies, as Kubernetes CronJob has them: allow overlapping runs, forbid (skip a
 * run while the previous one is active), replace (stop it and start the new one).
 */
import { describe, expect, it } from 'vitest';
import type { JobDetails, ScheduleRun } from '../src/shared/protocol/index.js';
import { runCli, startHead, waitFor, type TestHead } from './helpers/cluster.js';

async function create(head: TestHead, name: string, cron: string, policy: string, command: string[]): Promise<void> {
  // Every run's job is looked at: none may be deleted by the schedule's history limits meanwhile.
  const keep = ['--successful-jobs-history-limit', '1000', '--failed-jobs-history-limit', '1000'];
  const r = await runCli(['schedule', 'create', name, '--cron', cron, '--concurrency', policy, ...keep, '--entrypoint-num-cpus', '0', '-q', '--', ...command], { env: head.env });
  expect(r.code, r.stderr).toBe(0);
}

/** Stop firing and stop what still runs, so the test ends quickly and cleanly. */
async function windDown(head: TestHead, name: string): Promise<void> {
  await head.client.setSchedulePaused(name, true);
  for (const j of (await head.client.listJobs({ schedule: name, status: ['PENDING', 'RUNNING'] })).jobs) await head.client.stopJob(j.submission_id);
}

const byTime = (runs: ScheduleRun[], action: ScheduleRun['action']) => runs.filter((r) => r.action === action).sort((a, b) => a.scheduled_at - b.scheduled_at);

describe('schedule concurrency policies', () => {
  it('allow: runs overlap', async () => {
    const head = await startHead({ numCpus: 2 });
    await create(head, 'overlap', '* * * * * *', 'allow', ['sleep', '4']);
    const running = await waitFor(async () => {
      const { jobs } = await head.client.listJobs({ schedule: 'overlap', status: ['RUNNING'] });
      return jobs.length >= 2 ? jobs : null;
    }, { what: 'two runs at once' });
    expect(new Set(running.map((j) => j.submission_id)).size).toBe(running.length);
    const runs = await head.client.scheduleRuns('overlap');
    expect(runs.every((r) => r.action === 'started' && r.replaced.length === 0)).toBe(true);
    await windDown(head, 'overlap');
  });

  it('forbid: a run due while the previous one is active is skipped, never overlapping', async () => {
    const head = await startHead({ numCpus: 2 });
    await create(head, 'single', '* * * * * *', 'forbid', ['sleep', '2.5']);
    const runs = await waitFor(async () => {
      const r = await head.client.scheduleRuns('single', 100);
      return byTime(r, 'started').length >= 2 && byTime(r, 'skipped').length >= 2 ? r : null;
    }, { what: 'two started and two skipped runs', timeoutMs: 30_000 });
    const startedRuns = byTime(runs, 'started');
    const jobs: JobDetails[] = [];
    for (const r of startedRuns) jobs.push(await head.client.getJob(r.job_id!));
    // Each run was created only after the one before it had ended.
    for (let i = 1; i < jobs.length; i++) {
      const prev = jobs[i - 1]!;
      expect(prev.end_time, `${prev.submission_id} had ended`).not.toBeNull();
      expect(jobs[i]!.raysub.created_at).toBeGreaterThanOrEqual(prev.end_time!);
    }
    // A skipped run names the run that was still active at its due time.
    for (const s of byTime(runs, 'skipped')) {
      const active = startedRuns.filter((r) => r.scheduled_at < s.scheduled_at).at(-1);
      expect(s).toMatchObject({ job_id: null, trigger: 'cron', detail: `concurrency policy forbid: ${active?.job_id} still running` });
    }
    // A manual trigger obeys the policy too: skipped while a run is active (exit 65).
    await waitFor(async () => (await head.client.listJobs({ schedule: 'single', status: ['RUNNING'] })).jobs.length === 1, { what: 'a run to be active' });
    const trigger = await runCli(['schedule', 'trigger', 'single'], { env: head.env });
    if (trigger.code === 0) {
      // The active run ended between our check and the trigger; the policy let it start.
      expect(trigger.stdout).toMatch(/^single-manual-\d+\n$/);
    } else {
      expect(trigger.code).toBe(65);
      expect(trigger.stderr).toMatch(/did not start a job \(skipped\): concurrency policy forbid: single-\S+ still running/);
    }
    await windDown(head, 'single');
  });

  it('allow: at most 100 runs of a schedule are active at once; past them a run is skipped, not queued', async () => {
    const head = await startHead({ numCpus: 1 });
    // Held jobs never start: every run stays active, as runs that wait for capacity would.
    await head.client.createSchedule({ name: 'pile', cron: '0 0 1 1 *', job: { entrypoint: 'true', raysub: { hold: true } } });
    for (let i = 0; i < 100; i++) expect((await head.client.triggerSchedule('pile', `pile-${i}`)).action).toBe('started');
    const past = await head.client.triggerSchedule('pile', 'pile-100');
    expect(past).toMatchObject({ action: 'skipped', job_id: null, detail: '100 runs still active: a schedule runs at most 100 at once' });
    const held = await head.client.listJobs({ schedule: 'pile', status: ['PENDING'], limit: 1000 });
    expect(held.jobs).toHaveLength(100);
    // Once one is done, the next run starts again.
    await head.client.stopJob('pile-0');
    await waitFor(async () => (await head.client.getJob('pile-0')).status === 'STOPPED', { what: 'pile-0 to stop' });
    expect((await head.client.triggerSchedule('pile', 'pile-101')).action).toBe('started');
    await windDown(head, 'pile');
  });

  it('replace: the next run stops the active one and takes its place', async () => {
    const head = await startHead({ numCpus: 2 });
    await create(head, 'latest', '*/2 * * * * *', 'replace', ['sleep', '60']);
    const runs = await waitFor(async () => {
      const r = byTime(await head.client.scheduleRuns('latest'), 'started');
      return r.length >= 3 ? r : null;
    }, { what: 'three runs', timeoutMs: 30_000 });
    for (let i = 1; i < runs.length; i++) {
      const prev = runs[i - 1]!.job_id!;
      expect(runs[i]).toMatchObject({ replaced: [prev], detail: `concurrency policy replace: stopped ${prev}` });
      const stopped = await waitFor(async () => {
        const j = await head.client.getJob(prev);
        return j.status === 'STOPPED' ? j : null;
      }, { what: `${prev} to stop` });
      expect(stopped.raysub.error_type).toBe('STOPPED_BY_USER');
    }
    expect(runs[0]!.replaced).toEqual([]);
    await windDown(head, 'latest');
    const last = runs.at(-1)!.job_id!;
    await waitFor(async () => (await head.client.getJob(last)).status === 'STOPPED', { what: 'the last run to stop' });
  });
});
