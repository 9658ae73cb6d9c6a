/**
 * In-job bookkeeping that cannot leak: however a job with in-job tasks ends (its driver exits
 * without `get`, gives up on a queued task, is stopped by its timeout or by the user while its
 * workers start, or a worker crashes), the node's resources come back within a second of the
 * job's end, on the agent and on the head, and a job asking for the whole node runs at once.
 * After every scenario the invariant free + held == total holds on both (each logs an error
 * naming it if it ever breaks).
 */
import path from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import type { JobDetails } from '../src/shared/protocol/index.js';
import { repoRoot, runCli, spawnCli, startAgent, startHead, waitFor, type ManagedProcess, type TestHead } from './helpers/cluster.js';

const FIXTURE = path.join(repoRoot, 'test', 'fixtures', 'bookkeeping');
const CPUS = 2;

interface Cluster {
  head: TestHead;
  agent: ManagedProcess;
  /** When the node was seen with every CPU and byte free, sampled every 20 ms from the start. */
  allFree: { at: number; free: boolean }[];
}

async function cluster(): Promise<Cluster> {
  const head = await startHead({ localAgent: false, args: ['--heartbeat-ms', '200'] });
  const agent = await startAgent(head, { name: 'n1', numCpus: CPUS });
  const allFree: Cluster['allFree'] = [];
  let sampling = true;
  onTestFinished(() => {
    sampling = false;
  });
  void (async () => {
    while (sampling) {
      const nodes = await head.client.nodes().catch(() => null);
      if (nodes) allFree.push({ at: Date.now(), free: nodes.every((n) => n.free.num_cpus === n.totals.num_cpus && n.free.memory === n.totals.memory) });
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  return { head, agent, allFree };
}

function submitArgs(id: string, mode: string, more: string[] = []): string[] {
  return ['job', 'submit', '--submission-id', id, '--working-dir', FIXTURE, ...more, '--', 'python3', 'main.py', mode];
}

const NO_CPU = ['--entrypoint-num-cpus', '0'];

/** After the job's end: every CPU free again within a second, no invariant broken, and a whole-node job starts at once. */
async function expectAllBack(c: Cluster, job: JobDetails): Promise<void> {
  const { head, agent, allFree } = c;
  const end = job.end_time ?? 0;
  expect(end).toBeGreaterThan(0);
  // The first moment after the job's end from which the node stayed wholly free.
  const since = await waitFor(
    () => {
      const after = allFree.filter((s) => s.at >= end);
      if (after.length === 0 || !after[after.length - 1]?.free) return null;
      let i = after.length - 1;
      while (i > 0 && after[i - 1]?.free) i--;
      return after[i]?.at;
    },
    { what: 'every CPU to be free again', timeoutMs: 10_000 },
  );
  expect(since - end).toBeLessThan(1000);
  const plain = `${job.submission_id}-after`;
  const submitted = Date.now();
  await head.client.submitJob({ submission_id: plain, entrypoint: 'true', entrypoint_num_cpus: CPUS });
  const done = await head.client.waitForJob(plain, { timeoutMs: 30_000 });
  expect(done.status).toBe('SUCCEEDED');
  // At once: it never waited for resources (starting a sandbox takes the rest).
  expect((done.start_time ?? Infinity) - submitted).toBeLessThan(5000);
  for (const p of [head, agent]) expect(p.output()).not.toContain('resource invariant broken');
}

describe('in-job resources come back on every path a job ends by', () => {
  it('a driver that exits without get: the job succeeds and its starting workers give their CPUs back', async () => {
    const c = await cluster();
    const res = await runCli(submitArgs('exit-without-get', 'exit-without-get', NO_CPU), { env: c.head.env });
    expect(res.code, res.stdout + res.stderr).toBe(0);
    await expectAllBack(c, await c.head.client.getJob('exit-without-get'));
  }, 90_000);

  // The driver holds a CPU here: the queued task starts when the driver's exit frees it, just as the job ends.
  it('a driver that gives up on a queued task', async () => {
    const c = await cluster();
    const res = await runCli(submitArgs('give-up', 'give-up-on-queued'), { env: c.head.env });
    expect(res.code, res.stdout + res.stderr).toBe(0);
    expect(res.stdout).toContain('gave up on the queued task');
    await expectAllBack(c, await c.head.client.getJob('give-up'));
  }, 90_000);

  it('a runaway stopped by --timeout', async () => {
    const c = await cluster();
    const res = await runCli(submitArgs('runaway', 'runaway', ['--timeout', '4']), { env: c.head.env });
    expect(res.code).toBe(1);
    const job = await c.head.client.getJob('runaway');
    expect(job.raysub.error_type).toBe('TIMEOUT');
    await expectAllBack(c, job);
  }, 90_000);

  it('a job stopped while its workers start', async () => {
    const c = await cluster();
    const run = spawnCli(submitArgs('stopped', 'stop-while-starting', NO_CPU), { env: c.head.env });
    await waitFor(() => run.output().includes('submitted; waiting to be stopped'), { what: 'the tasks to be submitted', timeoutMs: 60_000 });
    const stop = await runCli(['job', 'stop', 'stopped'], { env: c.head.env });
    expect(stop.code, stop.stderr).toBe(0);
    await run.result;
    const job = await c.head.client.getJob('stopped');
    expect(job.status).toBe('STOPPED');
    await expectAllBack(c, job);
  }, 90_000);

  it('a worker that crashes mid-task', async () => {
    const c = await cluster();
    const res = await runCli(submitArgs('crash', 'worker-crash', NO_CPU), { env: c.head.env });
    expect(res.code, res.stdout + res.stderr).toBe(0);
    expect(res.stdout).toMatch(/crashed as expected: the worker running crash died/);
    await expectAllBack(c, await c.head.client.getJob('crash'));
  }, 90_000);
});
