/**
 * The in-job task API end to end: a real head, two agents, real python3 workers in the sandbox.
 * The job scripts live in test/fixtures/tasks and print one JSON line per check.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { processesWith, repoRoot, runCli, spawnCli, startAgent, startHead, waitFor, type TestHead } from './helpers/cluster.js';

const FIXTURES = path.join(repoRoot, 'test', 'fixtures', 'tasks');
const FAST = ['--heartbeat-ms', '200', '--lease-ms', '3000'];

async function twoAgents(): Promise<{ head: TestHead; a: string; b: string }> {
  const head = await startHead({ localAgent: false, args: FAST });
  await startAgent(head, { name: 'a', numCpus: 2, numGpus: 2, resources: { node_a: 10 } });
  await startAgent(head, { name: 'b', numCpus: 2, numGpus: 0, resources: { node_b: 10 } });
  const nodes = await head.client.nodes();
  const id = (name: string): string => nodes.find((n) => n.node_name === name)?.node_id ?? '';
  return { head, a: id('a'), b: id('b') };
}

function checks(stdout: string): Map<string, Record<string, unknown>> {
  const out = new Map<string, Record<string, unknown>>();
  for (const line of stdout.split('\n')) {
    const m = /\{"check".*\}$/.exec(line);
    if (!m) continue;
    const rec = JSON.parse(m[0]) as Record<string, unknown>;
    out.set(String(rec.check), rec);
  }
  return out;
}

function parentOf(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
}

describe('in-job tasks, objects and actors across two agents', () => {
  it('runs tasks in parallel, nested, with large objects between nodes, wait, errors, GPUs and actors', async () => {
    const { head, a, b } = await twoAgents();
    const res = await runCli(
      ['job', 'submit', '--submission-id', 'tasks-e2e', '--working-dir', FIXTURES, '--entrypoint-num-cpus', '0', '--entrypoint-resources', '{"node_a": 1}', '--', 'python3', 'cluster.py'],
      { env: head.env, timeoutMs: 150_000 },
    );
    expect(res.code, res.stdout + res.stderr).toBe(0);
    const c = checks(res.stdout);

    const parallel = c.get('parallel');
    // Four 1-second tasks on four free CPUs (two per agent): together, not one after another.
    expect(parallel?.seconds).toBeLessThan(2);
    expect(parallel?.nodes).toEqual([a, b].sort());

    expect(c.get('nested')).toMatchObject({ outer: 100, fib: 5 });

    // 50 MB made by a task on b, passed by reference to a task on a, and read by the driver.
    expect(c.get('big')).toMatchObject({ made_on: b, used_on: a, size: 50 * 1024 * 1024, same: true });

    expect(c.get('wait')).toMatchObject({ first: [0], pending: 2, ready_after: 1, timed_out: true });

    const caught = String(c.get('exception')?.caught);
    // Ray's format: where the task ran, then its own frames.
    expect(caught).toMatch(/^ray::fails\(\) \(pid=\d+, ip=[\d.]+\)\n/);
    expect(caught).toMatch(/File ".*cluster\.py", line \d+, in fails/);
    expect(caught).toContain("KeyError: 'missing k'");
    expect(caught).not.toContain('raysub/worker.py');

    // Two 1-GPU tasks at once on the node with two (fake) GPUs: each sees its own device.
    const gpus = c.get('gpus')?.got as [string, number[], string][];
    expect(gpus.map((g) => g[0]).sort()).toEqual(['0', '1']);
    expect(gpus.every((g) => g[1].length === 1 && String(g[1][0]) === g[0] && g[2] === a)).toBe(true);

    // Calls run one at a time, in submission order, on the actor's own state (odd ones sleep first).
    expect(c.get('actor')).toMatchObject({ balances: [101, 103, 106, 110, 115], history: [1, 2, 3, 4, 5] });

    const death = c.get('actor_death') as { errors: string[]; later: string; crashed: string };
    expect(death.errors).toHaveLength(4);
    for (const e of death.errors) expect(e).toMatch(/actor Account .*killed by raysub\.kill\(\)/);
    expect(death.later).toMatch(/is dead: killed by raysub\.kill\(\)/);
    expect(death.crashed).toMatch(/died before Account\.crash finished: the actor's worker process died \(exit code 3\)/);

    // Tasks' output reaches the job's log, prefixed by its worker, from this node and through the head from the other.
    expect(c.get('output')).toEqual({ check: 'output', here: a, there: b });
    expect(res.stdout).toMatch(/^\(worker w\d+\) printed by a task on a$/m);
    await waitFor(async () => (await head.client.getLogs('tasks-e2e')).match(/^\(worker w\d+\) printed by a task on b$/m), { what: "the output of b's worker" });

    // Status shows the in-job counts the agents reported.
    const status = await runCli(['job', 'status', 'tasks-e2e'], { env: head.env });
    expect(status.stdout).toMatch(/In-job\s+\d+ tasks: \d+ finished, 1 failed.*; actors: .*dead/);
    const job = await head.client.getJob('tasks-e2e');
    expect(job.raysub.injob?.finished).toBeGreaterThanOrEqual(20);
  }, 180_000);

  it('retries a task whose worker is killed, and fails one that has no retries left', async () => {
    const { head } = await twoAgents();
    const job = spawnCli(['job', 'submit', '--working-dir', FIXTURES, '--entrypoint-num-cpus', '0', '--', 'python3', 'retry.py'], { env: head.env });
    for (const marker of ['2.31070', '2.31071']) {
      const sleeper = await waitFor(() => processesWith(marker)[0], { what: `the task's marker process ${marker}`, timeoutMs: 60_000 });
      process.kill(parentOf(sleeper), 'SIGKILL');
    }
    const res = await job.result;
    expect(res.code, res.stdout + res.stderr).toBe(0);
    const out = JSON.parse(/\{"survivor".*\}/.exec(res.stdout)?.[0] ?? '{}') as { survivor: string; fragile_error: string };
    expect(out.survivor).toMatch(/^w\d+$/);
    expect(out.fragile_error).toMatch(/the worker running fragile died .*attempt 1 of 1/);
  }, 120_000);

  it('the head sees what in-job tasks hold: a job waits for CPUs they use, then runs', async () => {
    const { head } = await twoAgents();
    const busy = spawnCli(['job', 'submit', '--submission-id', 'busy', '--working-dir', FIXTURES, '--entrypoint-num-cpus', '0', '--', 'python3', 'busy.py'], { env: head.env });
    await waitFor(async () => (await head.client.nodes()).every((n) => n.free.num_cpus === 0), { what: 'the in-job tasks to hold every CPU', timeoutMs: 60_000 });
    await head.client.submitJob({ submission_id: 'later', entrypoint: 'true', entrypoint_num_cpus: 1 });
    const waiting = await head.client.getJob('later');
    expect(waiting.status).toBe('PENDING');
    expect(waiting.raysub.queue?.reason).toMatch(/needs 1 CPUs?; largest free: 0/);
    const later = await head.client.waitForJob('later', { timeoutMs: 60_000 });
    expect(later.status).toBe('SUCCEEDED');
    // A job that submitted no in-job work has no in-job counts (none are kept for it either).
    expect(later.raysub.injob).toBeNull();
    const done = await busy.result;
    expect(done.code, done.stderr).toBe(0);
    expect(done.stdout).toContain('done holding');
    // It started only once the in-job tasks (6 s each) had given their CPUs back.
    expect((later.raysub.started_at ?? 0) - ((await head.client.getJob('busy')).raysub.started_at ?? Infinity)).toBeGreaterThanOrEqual(5000);
  }, 120_000);

  it('stopping the job kills its actors on every node and frees their resources', async () => {
    const { head } = await twoAgents();
    const job = spawnCli(['job', 'submit', '--submission-id', 'stop-actors', '--working-dir', FIXTURES, '--entrypoint-num-cpus', '0', '--', 'python3', 'stop.py'], { env: head.env });
    await waitFor(() => job.output().includes('actors ready'), { what: 'the actors', timeoutMs: 60_000 });
    expect(processesWith('sleep 3117')).toHaveLength(1);
    expect(processesWith('sleep 3118')).toHaveLength(1);
    await waitFor(async () => (await head.client.nodes()).every((n) => n.free.num_cpus === 1), { what: 'the head to see each actor holding a CPU' });
    const stop = await runCli(['job', 'stop', 'stop-actors'], { env: head.env });
    expect(stop.code).toBe(0);
    expect((await head.client.getJob('stop-actors')).status).toBe('STOPPED');
    await waitFor(() => processesWith('sleep 3117').length + processesWith('sleep 3118').length === 0, { what: 'the actors to die' });
    await waitFor(async () => (await head.client.nodes()).every((n) => n.free.num_cpus === 2), { what: 'the CPUs to be free again' });
    await job.result;
  }, 120_000);
});
