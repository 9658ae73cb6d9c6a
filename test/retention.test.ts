/**
 * Retention on a real head, with its limits in seconds: finished jobs and their logs disappear on
 * schedule (by TTL, by count, by a schedule's history limits), through the one delete path, while
 * active jobs are never touched.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { RaysubError } from '../src/shared/errors.js';
import { runCli, startHead, tempDir, waitFor, workingDir, type TestHead } from './helpers/cluster.js';

const SWEEP = { RAYSUB_RETENTION_SWEEP_MS: '200' };

async function exists(head: TestHead, id: string): Promise<boolean> {
  try {
    await head.client.getJob(id);
    return true;
  } catch (err) {
    if (err instanceof RaysubError && err.code === 'JOB_NOT_FOUND') return false;
    throw err;
  }
}

const logDir = (head: TestHead, id: string): string => path.join(head.dataDir, 'logs', id);

describe('retention', () => {
  it('deletes finished jobs and their logs beyond the count at once and past the TTL on schedule, never an active one', async () => {
    const head = await startHead({ numCpus: 2, args: ['--job-ttl', '25s', '--max-finished-jobs', '3'], env: SWEEP });
    const dir = workingDir({ 'main.py': 'import sys\nprint("run", sys.argv[1])\n' });
    const first = await runCli(['job', 'submit', '--submission-id', 'r0', '--working-dir', dir, '--', 'python3', 'main.py', '0'], { env: head.env });
    expect(first.code, first.stderr).toBe(0);
    const { runtime_env } = await head.client.getJob('r0');
    // An active job is never deleted, however old the others.
    await head.client.submitJob({ entrypoint: 'sleep 300', submission_id: 'active', entrypoint_num_cpus: 0 });
    for (let i = 1; i < 5; i++) {
      await head.client.submitJob({ entrypoint: `python3 main.py ${i}`, submission_id: `r${i}`, runtime_env: runtime_env ?? undefined });
      expect((await head.client.waitForJob(`r${i}`)).status).toBe('SUCCEEDED');
    }
    // By count: the two oldest go with their logs, the three newest stay.
    await expect.poll(async () => [await exists(head, 'r0'), await exists(head, 'r1')], { timeout: 15_000 }).toEqual([false, false]);
    expect(fs.existsSync(logDir(head, 'r0'))).toBe(false);
    expect(fs.existsSync(logDir(head, 'r1'))).toBe(false);
    for (const id of ['r2', 'r3', 'r4']) expect(await head.client.getLogs(id)).toBe(`run ${id.slice(1)}\n`);
    // By TTL: 25 seconds after it ended, each remaining one goes too.
    const ended = (await head.client.getJob('r4')).end_time ?? 0;
    await expect.poll(async () => (await head.client.listJobs()).jobs.map((j) => j.submission_id), { timeout: 60_000 }).toEqual(['active']);
    expect(Date.now() - ended).toBeGreaterThanOrEqual(25_000);
    expect(fs.readdirSync(path.join(head.dataDir, 'logs')).filter((d) => d !== 'active')).toEqual([]);
    // No job refers to the uploaded package any more: it is garbage to the package store.
    const pkg = String(runtime_env?.working_dir);
    expect(pkg).toMatch(/^gcs:\/\//);
    expect((await head.client.listJobs()).jobs.filter((j) => j.runtime_env?.working_dir === pkg)).toEqual([]);
    expect((await head.client.getJob('active')).status).toBe('RUNNING');
    await head.client.stopJob('active');
  });

  it("keeps a schedule's last succeeded and failed jobs as its history limits say; logs left without a job go at start", async () => {
    // Logs a crash left behind (their job deleted, the directory not yet) are removed when the head starts.
    const dataDir = tempDir('raysub-head-');
    fs.mkdirSync(path.join(dataDir, 'logs', 'ghost'), { recursive: true });
    fs.writeFileSync(path.join(dataDir, 'logs', 'ghost', '0.log'), 'left behind\n');
    const head = await startHead({ numCpus: 2, dataDir, env: SWEEP });
    expect(fs.existsSync(path.join(dataDir, 'logs', 'ghost'))).toBe(false);
    const create = async (name: string, code: string, limits: string[]): Promise<void> => {
      const r = await runCli(['schedule', 'create', name, '--cron', '* * * * * *', ...limits, '--entrypoint-num-cpus', '0', '-q', '--', 'python3', '-c', code], {
        env: head.env,
      });
      expect(r.code, r.stderr).toBe(0);
    };
    await create('good', 'print("ok")', ['--successful-jobs-history-limit', '2']);
    await create('bad', 'import sys; sys.exit(3)', []);
    const finished = async (name: string): Promise<string[]> =>
      (await head.client.listJobs({ schedule: name })).jobs.filter((j) => j.status !== 'PENDING' && j.status !== 'RUNNING').map((j) => j.submission_id);
    // Several runs of each have ended...
    await waitFor(async () => (await head.client.scheduleRuns('good')).length >= 5 && (await head.client.scheduleRuns('bad')).length >= 4, {
      what: 'runs of both schedules',
      timeoutMs: 60_000,
    });
    for (const name of ['good', 'bad']) await runCli(['schedule', 'pause', name], { env: head.env });
    // ...and once every run has ended, only the last two succeeded ones, and the last failed one
    // (the default), are kept.
    const settled = async (name: string): Promise<number> => {
      const jobs = (await head.client.listJobs({ schedule: name })).jobs;
      return jobs.some((j) => j.status === 'PENDING' || j.status === 'RUNNING') ? -1 : jobs.length;
    };
    await expect.poll(() => settled('good'), { timeout: 30_000 }).toBe(2);
    await expect.poll(() => settled('bad'), { timeout: 30_000 }).toBe(1);
    const runs = await head.client.scheduleRuns('good');
    const newest = runs.filter((r) => r.action === 'started').map((r) => r.job_id);
    expect((await finished('good')).sort()).toEqual(newest.slice(0, 2).sort());
    // The run history still lists the deleted runs, their jobs shown as gone.
    expect(runs.some((r) => r.action === 'started' && r.job_status === null)).toBe(true);
    const info = await head.client.getSchedule('bad');
    expect(info).toMatchObject({ successful_jobs_history_limit: 3, failed_jobs_history_limit: 1 });
  });
});
