/**
 * Careless and hostile use of the head, end to end with real processes: a stream of client errors
 * while an agent is dead, more tasks at once than an agent can run, the head restarting while an
 * agent dies. The head and its agents must keep serving, and the leases, task slots and
 * placement rules must hold.
 */
import { request } from 'undici';
import { describe, expect, it, onTestFinished } from 'vitest';
import { processesWith, runCli, startAgent, startHead, waitFor, type TestHead } from './helpers/cluster.js';

async function status(head: TestHead, method: 'GET' | 'POST' | 'DELETE', path: string): Promise<number> {
  const res = await request(head.url + path, { method, headers: { authorization: `Bearer ${head.token}` } });
  await res.body.dump();
  return res.statusCode;
}

/** Kill what a SIGKILLed agent left running, when the test ends. */
function reapAfterwards(marker: string): void {
  onTestFinished(() => {
    for (const pid of processesWith(marker)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone already
      }
    }
  });
}

describe('the head under careless and hostile use', () => {
  it('a 404 every second does not keep a dead agent\'s job alive past its lease', async () => {
    const leaseMs = 1500;
    const head = await startHead({ localAgent: false, args: ['--heartbeat-ms', '100', '--lease-ms', String(leaseMs)] });
    const agent = await startAgent(head, { name: 'doomed', numCpus: 1 });
    reapAfterwards('sleep 3051');
    await head.client.submitJob({ submission_id: 'orphaned', entrypoint: 'sleep 3051' });
    await waitFor(async () => (await head.client.getJob('orphaned')).status === 'RUNNING', { what: 'the job to run' });
    await agent.kill('SIGKILL');
    const killedAt = Date.now();
    // Client mistakes answered inside a transaction, one a second, for several leases.
    const answers: number[] = [];
    let endedAt: number | null = null;
    while (Date.now() - killedAt < 8 * leaseMs) {
      answers.push(await status(head, 'DELETE', '/api/schedules/nope'));
      answers.push(await status(head, 'POST', '/api/schedules/nope/pause'));
      if (endedAt === null && (await head.client.getJob('orphaned')).status !== 'RUNNING') endedAt = Date.now();
      await new Promise((r) => setTimeout(r, 1000));
    }
    expect(new Set(answers)).toEqual(new Set([404]));
    expect(endedAt, 'the job was still RUNNING after 8 leases of 404s').not.toBeNull();
    // The lease, the lease checks' period and this loop's own second.
    expect((endedAt ?? Infinity) - killedAt).toBeLessThan(leaseMs + 2500);
    expect(await head.client.getJob('orphaned')).toMatchObject({ status: 'FAILED', raysub: { error_type: 'NODE_LOST' } });
    expect((await head.client.nodes()).find((n) => n.node_name === 'doomed')?.state).toBe('LOST');
  });

  it('runs 1100 tasks of 0 CPUs on one agent: never past its task slots, head and agent alive', async () => {
    const head = await startHead({ numCpus: 2 });
    const [node] = await head.client.nodes();
    const slots = node?.totals.task_slots;
    expect(slots).toBeGreaterThan(0);
    let most = 0;
    const states = new Set<string>();
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        const n = (await head.client.nodes()).find((x) => x.node_id === node?.node_id);
        states.add(n?.state ?? 'gone');
        most = Math.max(most, n?.running_tasks ?? 0);
        await new Promise((r) => setTimeout(r, 250));
      }
    })();
    const res = await runCli(['job', 'submit', '--submission-id', 'wide', '--parallel', '1100', '--entrypoint-num-cpus', '0', '-q', '--', 'python3', '-c', 'import time; time.sleep(3)'], {
      env: head.env,
      timeoutMs: 840_000,
    });
    watching = false;
    await watcher;
    expect([...states], head.output().slice(-4000)).toEqual(['ALIVE']);
    expect(res.code, res.stderr.slice(-2000)).toBe(0);
    expect(await head.client.getJob('wide')).toMatchObject({ status: 'SUCCEEDED', raysub: { task_counts: { SUCCEEDED: 1100 } } });
    expect(most).toBeLessThanOrEqual(slots ?? 0);
    console.log(`1100 tasks: at most ${most} at once on a node of ${slots} task slots`);
    // The same agent (it never had to register again), with everything given back.
    const after = (await head.client.nodes()).filter((n) => n.state === 'ALIVE');
    expect(after.map((n) => n.node_id)).toEqual([node?.node_id]);
    expect(after[0]?.free).toMatchObject({ num_cpus: 2, task_slots: slots });
    expect(head.proc.exitCode).toBeNull();
  }, 900_000);

  it('after a head restart, new work goes only to agents that came back', async () => {
    const head = await startHead({ localAgent: false, args: ['--heartbeat-ms', '100', '--lease-ms', '30000'] });
    await startAgent(head, { name: 'stays', numCpus: 1 });
    const gone = await startAgent(head, { name: 'gone', numCpus: 4 });
    await head.kill('SIGKILL');
    await gone.kill('SIGKILL');
    const restarted = await head.restart();
    // Within the 30 s grace both are still ALIVE to the head; only one will ever answer.
    await restarted.client.submitJob({ submission_id: 'after-restart', entrypoint: 'echo placed', entrypoint_num_cpus: 1 });
    const job = await restarted.client.waitForJob('after-restart', { timeoutMs: 60_000 });
    expect(job.status).toBe('SUCCEEDED');
    const attempts = (await restarted.client.getJob('after-restart')).raysub.tasks?.[0]?.attempts ?? [];
    expect(attempts.map((a) => [a.node_name, a.outcome])).toEqual([['stays', 'exited']]);
  });
});
