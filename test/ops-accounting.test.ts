/**
 * Accounting from the cgroups the agent puts each task attempt in: CPU-seconds and peak memory per
 * attempt and per job, shown by `job status --json` and `job list`, through a real head, agent and
 * python3 worker.
 */
import { describe, expect, it } from 'vitest';
import type { JobDetails, UsageSummary } from '../src/shared/protocol/index.js';
import { runCli, startHead } from './helpers/cluster.js';

const MiB = 1024 * 1024;

// Touches 200 MiB (b'a' * n writes every page), then burns one CPU for 1.5 s of its own CPU time.
const BURN = [
  'import time',
  'x = b"a" * (200 << 20)',
  't = time.process_time()',
  'while time.process_time() - t < 1.5:',
  '    pass',
  'print("burned", len(x))',
].join('\n');

describe('accounting', () => {
  it('a job that burns one CPU for 1.5 s and touches 200 MB reports CPU-seconds within 1.0-4.0 and peak memory within 190-600 MB, in `job status --json` and `job list`', async () => {
    const head = await startHead({ numCpus: 2 });
    const node = (await head.client.nodes())[0];
    if (!node?.sandbox.cgroups) {
      console.log(`skipped: the local agent has no cgroups here (${node?.sandbox.detail ?? 'no node'}), so nothing counts a task's CPU and memory`);
      return;
    }
    const run = await runCli(['job', 'submit', '--submission-id', 'burn', '--entrypoint-num-cpus', '1', '-q', '--', 'python3', '-c', BURN], { env: head.env });
    expect(run.code, run.stdout + run.stderr + JSON.stringify((await head.client.getJob("burn")).raysub)).toBe(0);
    expect(run.stdout).toContain(`burned ${200 * MiB}`);

    const status = await runCli(['job', 'status', 'burn', '--json'], { env: head.env });
    const job = JSON.parse(status.stdout) as JobDetails;
    const usage = job.raysub.usage;
    console.log(`measured: ${JSON.stringify(usage)}`);
    expect(usage?.cpu_s).toBeGreaterThanOrEqual(1.0);
    expect(usage?.cpu_s).toBeLessThanOrEqual(4.0);
    expect(usage?.peak_memory).toBeGreaterThanOrEqual(190 * MiB);
    expect(usage?.peak_memory).toBeLessThanOrEqual(600 * MiB);
    expect(usage?.run_s).toBeGreaterThanOrEqual(1.0);
    expect(usage?.gpu_s).toBe(0);
    const attempt = job.raysub.tasks?.[0]?.attempts[0];
    expect(attempt?.cpu_s).toBeCloseTo(usage?.cpu_s ?? NaN, 2);
    expect(attempt?.peak_memory).toBe(usage?.peak_memory);

    const list = await runCli(['job', 'list'], { env: head.env });
    const header = list.stdout.split('\n')[0] ?? '';
    expect(header).toMatch(/CPU-S\s+PEAK-MEM/);
    const row = list.stdout.split('\n').find((l) => l.startsWith('burn ')) ?? '';
    const m = /\s(\d+\.\d+)\s+(\d+\.\d) MiB\s/.exec(row);
    expect(m, row).not.toBeNull();
    expect(Number(m?.[1])).toBeGreaterThanOrEqual(1.0);
    expect(Number(m?.[1])).toBeLessThanOrEqual(4.0);
    expect(Number(m?.[2])).toBeGreaterThanOrEqual(190);
    expect(Number(m?.[2])).toBeLessThanOrEqual(600);
    const human = await runCli(['job', 'status', 'burn'], { env: head.env });
    expect(human.stdout).toMatch(/Usage\s+CPU \d+\.\d\d s, peak memory \d+\.\d MiB, ran \d+\.\d s/);

    // Two tasks one after the other (the second may run in the first one's sandbox, reused): each
    // attempt counts its own CPU, not its predecessor's too; the job adds them up.
    const two = await runCli(['job', 'submit', '--submission-id', 'burn2', '--label', 'team=ml', '--parallel', '2', '--max-concurrent', '1', '--entrypoint-num-cpus', '1', '-q', '--', 'python3', '-c', BURN], { env: head.env });
    expect(two.code, two.stderr).toBe(0);
    const both = await head.client.getJob('burn2');
    const attempts = (both.raysub.tasks ?? []).map((t) => t.attempts[0]);
    console.log(`measured per attempt: ${JSON.stringify(attempts.map((x) => ({ cpu_s: x?.cpu_s, peak_memory: x?.peak_memory })))}`);
    for (const x of attempts) {
      expect(x?.cpu_s).toBeGreaterThanOrEqual(1.0);
      expect(x?.cpu_s).toBeLessThanOrEqual(4.0);
      if (x?.peak_memory !== null) expect(x?.peak_memory).toBeLessThanOrEqual(600 * MiB);
    }
    expect(both.raysub.usage?.cpu_s).toBeCloseTo((attempts[0]?.cpu_s ?? NaN) + (attempts[1]?.cpu_s ?? NaN), 2);

    // `job usage`: the period's jobs summed up, one row per value of a label.
    const byTeam = await runCli(['job', 'usage', '--since', '1h', '--by', 'team', '--json'], { env: head.env });
    expect(byTeam.code, byTeam.stderr).toBe(0);
    const summary = JSON.parse(byTeam.stdout) as UsageSummary;
    const ml = summary.groups.find((g) => g.group === 'ml');
    const none = summary.groups.find((g) => g.group === null);
    expect(ml).toMatchObject({ jobs: 1, attempts: 2, uncounted: 0 });
    expect(ml?.cpu_s).toBeCloseTo(both.raysub.usage?.cpu_s ?? NaN, 1);
    expect(none).toMatchObject({ jobs: 1, attempts: 1, uncounted: 0, peak_memory: usage?.peak_memory });
    const table = await runCli(['job', 'usage', '--by', 'team'], { env: head.env });
    expect(table.stdout).toMatch(/TEAM\s+JOBS\s+ATTEMPTS\s+CPU-S\s+PEAK-MEM\s+RUN-S\s+GPU-S/);
    expect(table.stdout).toMatch(/^ml\s+1\s+2\s+\d+\.\d/m);
    const future = await head.client.usage({ since: Date.now() + 3_600_000 });
    expect(future.groups).toEqual([]);

    // /metrics adds up the same counters (three attempts ended, each counted).
    const metrics = await (await fetch(`${head.url}/metrics`, { headers: { authorization: `Bearer ${head.token}` } })).text();
    const cpuTotal = Number(/^raysub_task_cpu_seconds_total (\S+)$/m.exec(metrics)?.[1]);
    expect(cpuTotal).toBeCloseTo((usage?.cpu_s ?? NaN) + (both.raysub.usage?.cpu_s ?? NaN), 1);
    expect(metrics).toMatch(/^raysub_task_peak_memory_bytes_count 3$/m);
    expect(metrics).toMatch(/^raysub_task_attempts_uncounted_total 0$/m);
  });
});
