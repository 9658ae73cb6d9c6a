import { describe, expect, it } from 'vitest';
import type { JobDetails, JobSubmitRequest } from '../src/shared/protocol/index.js';
import { processesWith, runCli, startAgent, startHead, waitFor, workingDir, type TestHead } from './helpers/cluster.js';

const FAST = ['--heartbeat-ms', '100', '--lease-ms', '1500'];

const RECORD = `
import json, os, time
start = time.time()
time.sleep(float(os.environ.get("DUR", "0.4")))
print(json.dumps({"node": os.environ["RAYSUB_NODE_ID"], "start": start, "end": time.time(),
                  "cuda": os.environ["CUDA_VISIBLE_DEVICES"], "task": int(os.environ["RAYSUB_TASK_INDEX"]),
                  "count": int(os.environ["RAYSUB_TASK_COUNT"])}))
`;

interface Span {
  node: string;
  start: number;
  end: number;
  cuda: string;
  task: number;
  count: number;
  cpus: number;
  gpus: number;
}

async function submit(head: TestHead, req: JobSubmitRequest & { submission_id: string }): Promise<string> {
  return (await head.client.submitJob(req)).submission_id;
}

async function waitTerminal(head: TestHead, id: string, timeoutMs = 60_000): Promise<JobDetails> {
  return head.client.waitForJob(id, { timeoutMs });
}

async function spansOf(head: TestHead, id: string, cpus: number, gpus: number): Promise<Span[]> {
  const logs = await head.client.getLogs(id);
  return logs
    .split('\n')
    .map((l) => /\{.*\}/.exec(l)?.[0])
    .filter((l): l is string => Boolean(l))
    .map((l) => ({ ...(JSON.parse(l) as Omit<Span, 'cpus' | 'gpus'>), cpus, gpus }));
}

describe('scheduling across several agents', () => {
  it('never oversubscribes CPUs or GPUs and gives concurrent tasks disjoint GPUs', async () => {
    const head = await startHead({ localAgent: false, args: FAST });
    await startAgent(head, { name: 'big', numCpus: 2, numGpus: 2 });
    await startAgent(head, { name: 'small', numCpus: 1, numGpus: 1 });
    const nodes = await head.client.nodes();
    const cap = new Map(nodes.map((n) => [n.node_id, n.totals]));
    const dir = workingDir({ 'record.py': RECORD });
    const rt = (dur: string) => ({ working_dir: undefined, env_vars: { DUR: dur } });
    const ids: [string, number, number][] = [];
    const upload = async (id: string, cpus: number, gpus: number, parallel: number) => {
      const res = await runCli(
        ['job', 'submit', '--no-wait', '--submission-id', id, '--working-dir', dir, '--entrypoint-num-cpus', String(cpus), '--entrypoint-num-gpus', String(gpus), '--parallel', String(parallel), '--runtime-env-json', JSON.stringify(rt('0.4')), '--', 'python3', 'record.py'],
        { env: head.env },
      );
      expect(res.code, res.stderr).toBe(0);
      ids.push([id, cpus, gpus]);
    };
    await upload('cpu-only', 1, 0, 6);
    await upload('whole-gpu', 0.5, 1, 4);
    await upload('half-gpu', 0.5, 0.5, 4);
    const spans: Span[] = [];
    for (const [id, cpus, gpus] of ids) {
      const job = await waitTerminal(head, id);
      expect(job.status, job.message ?? '').toBe('SUCCEEDED');
      const s = await spansOf(head, id, cpus, gpus);
      expect(s).toHaveLength(job.raysub.parallel);
      spans.push(...s);
    }
    const usedNodes = new Set(spans.map((s) => s.node));
    expect(usedNodes.size).toBe(2);
    for (const node of usedNodes) {
      const mine = spans.filter((s) => s.node === node);
      const totals = cap.get(node);
      expect(totals).toBeDefined();
      for (const s of mine) {
        const concurrent = mine.filter((o) => o.start < s.end && s.start < o.end && o.start <= s.start);
        const active = mine.filter((o) => o.start <= s.start && s.start < o.end);
        const cpus = active.reduce((a, o) => a + o.cpus, 0);
        const gpus = active.reduce((a, o) => a + o.gpus, 0);
        expect(cpus).toBeLessThanOrEqual(totals?.num_cpus ?? 0);
        expect(gpus).toBeLessThanOrEqual(totals?.num_gpus ?? 0);
        // Per device, the shares of tasks running at the same instant never exceed one GPU.
        const perDevice = new Map<string, number>();
        for (const o of active) for (const d of o.cuda ? o.cuda.split(',') : []) perDevice.set(d, (perDevice.get(d) ?? 0) + Math.min(o.gpus, 1));
        for (const share of perDevice.values()) expect(share).toBeLessThanOrEqual(1.0001);
        expect(concurrent.length).toBeGreaterThan(0);
      }
      for (const s of mine) {
        if (s.gpus === 0) expect(s.cuda).toBe('');
        else expect(s.cuda.split(',').filter(Boolean)).toHaveLength(Math.ceil(s.gpus));
        expect(Number(s.cuda.split(',')[0] ?? 0)).toBeLessThan((totals?.num_gpus ?? 0) || 1);
      }
    }
    expect(spans.filter((s) => s.task === 0 && s.count === 6)).toHaveLength(1);
  });

  it('queues by priority, backfills small jobs, and keeps a large job from starving', async () => {
    const head = await startHead({ numCpus: 2, env: { RAYSUB_STARVATION_S: '1.5' } });
    const sleeper = (id: string, cpus: number, secs: number, priority = 0) =>
      submit(head, { submission_id: id, entrypoint: `sleep ${secs}`, entrypoint_num_cpus: cpus, raysub: { priority } });
    await sleeper('first', 1, 1.5);
    await waitFor(async () => (await head.client.getJob('first')).status === 'RUNNING');
    await sleeper('big', 2, 0.2);
    const waiting = await head.client.getJob('big');
    expect(waiting.status).toBe('PENDING');
    expect(waiting.raysub.queue).toMatchObject({ position: 1 });
    expect(waiting.raysub.queue?.reason).toMatch(/needs 2 CPUs; largest free: 1 on /);
    // A stream of small jobs that would keep one CPU busy forever.
    const small: string[] = [];
    const deadline = Date.now() + 8000;
    while (Date.now() < deadline && (await head.client.getJob('big')).status === 'PENDING') {
      const id = `small-${small.length}`;
      await sleeper(id, 1, 1);
      small.push(id);
      await new Promise((r) => setTimeout(r, 300));
    }
    const big = await waitTerminal(head, 'big');
    expect(big.status).toBe('SUCCEEDED');
    const smalls = await Promise.all(small.map((id) => waitTerminal(head, id)));
    const bigStart = big.raysub.started_at ?? Infinity;
    // Small jobs behind the big one ran first while it could not fit (backfilling)...
    expect(smalls.filter((j) => (j.raysub.started_at ?? 0) < bigStart).length).toBeGreaterThan(0);
    // ...but not forever: the big job started within a few seconds, before later small jobs.
    expect(bigStart - big.raysub.created_at).toBeLessThan(6000);
    expect(smalls.filter((j) => (j.raysub.started_at ?? 0) > bigStart).length).toBeGreaterThan(0);

    // Priority: with the node busy, a later high-priority job takes the first CPU that frees up.
    // Both holders run until stopped, so no CPU frees by the clock while the queue is checked.
    await sleeper('hold-1', 1, 300);
    await sleeper('hold-2', 1, 300);
    await waitFor(async () => (await head.client.getJob('hold-1')).status === 'RUNNING' && (await head.client.getJob('hold-2')).status === 'RUNNING');
    await sleeper('low', 1, 0.1);
    await sleeper('high', 1, 1, 5);
    expect((await head.client.getJob('high')).raysub.queue?.position).toBe(1);
    expect((await head.client.getJob('low')).raysub.queue?.position).toBe(2);
    await head.client.stopJob('hold-1');
    const [low, high] = await Promise.all([waitTerminal(head, 'low'), waitTerminal(head, 'high')]);
    await head.client.stopJob('hold-2');
    // One CPU frees when hold-1 ends: high gets it, and low starts only once high has finished.
    expect(low.raysub.started_at ?? 0).toBeGreaterThanOrEqual(high.end_time ?? Infinity);
  });

  it('fails an impossible request fast as UNSCHEDULABLE unless told to wait', async () => {
    const head = await startHead({ numCpus: 2 });
    const res = await runCli(['job', 'submit', '--entrypoint-num-cpus', '8', '--submission-id', 'huge', '--', 'true'], { env: head.env });
    expect(res.code).toBe(1);
    const job = await head.client.getJob('huge');
    expect(job).toMatchObject({ status: 'FAILED', error_type: 'JOB_SUPERVISOR_ACTOR_UNSCHEDULABLE', raysub: { error_type: 'UNSCHEDULABLE' } });
    expect(job.raysub.message).toMatch(/no node can ever provide 8 CPUs/);
    expect(job.message).toMatch(/^Job supervisor actor could not be scheduled: no node can ever provide 8 CPUs/);
    // Through the API a job waits, as on Ray, unless it asks to fail fast.
    await submit(head, { submission_id: 'gpu', entrypoint: 'true', entrypoint_num_gpus: 1, raysub: { wait_for_capacity: false } });
    expect((await waitTerminal(head, 'gpu')).raysub.error_type).toBe('UNSCHEDULABLE');
    await submit(head, { submission_id: 'patient', entrypoint: 'true', entrypoint_num_cpus: 8, raysub: { wait_for_capacity: true } });
    const patient = await head.client.getJob('patient');
    expect(patient.status).toBe('PENDING');
    expect(patient.raysub.queue?.reason).toMatch(/^no node can ever provide 8 CPUs \(largest node .+ has 2\); waiting for one to join$/);
    expect((await runCli(['job', 'stop', 'patient'], { env: head.env })).code).toBe(0);
  });

  it('runs array jobs with per-task logs, and stops the rest when one task fails', async () => {
    const head = await startHead({ numCpus: 2 });
    const ok = await runCli(['job', 'submit', '--parallel', '3', '--entrypoint-num-cpus', '0.5', '--', 'echo "task $RAYSUB_TASK_INDEX of $RAYSUB_TASK_COUNT"'], { env: head.env });
    expect(ok.code).toBe(0);
    for (const i of [0, 1, 2]) expect(ok.stdout).toContain(`[task ${i}] task ${i} of 3`);

    const script = 'if [ "$RAYSUB_TASK_INDEX" = 1 ]; then sleep 0.5; echo "task 1 gives up" >&2; exit 5; fi; echo started; exec sleep 3021';
    const res = await runCli(['job', 'submit', '--submission-id', 'arr', '--parallel', '4', '--entrypoint-num-cpus', '0.5', '--', script], { env: head.env });
    expect(res.code).toBe(5);
    const job = await head.client.getJob('arr');
    expect(job.status).toBe('FAILED');
    expect(job.raysub.message).toMatch(/^task 1 of 4 failed: exited with code 5/);
    const tasks = job.raysub.tasks ?? [];
    expect(tasks.find((t) => t.index === 1)?.state).toBe('FAILED');
    expect(tasks.filter((t) => t.state === 'STOPPED')).toHaveLength(3);
    expect((await head.client.getLogs('arr')).match(/started/g)).toHaveLength(3);
    await waitFor(() => processesWith('sleep 3021').length === 0, { what: 'the other tasks to be killed' });
  });

  it('retries failed tasks with back-off and keeps the history of attempts', async () => {
    const head = await startHead({ numCpus: 1 });
    const flaky = 'echo "attempt $RAYSUB_ATTEMPT"; [ "$RAYSUB_ATTEMPT" -ge 2 ]';
    const res = await runCli(['job', 'submit', '--submission-id', 'flaky', '--max-retries', '2', '--retry-backoff', '0.2', '--', flaky], { env: head.env });
    expect(res.code).toBe(0);
    expect(res.stdout).toContain('attempt 1');
    expect(res.stdout).toContain('attempt 2');
    const job = await head.client.getJob('flaky');
    const attempts = job.raysub.tasks?.[0]?.attempts ?? [];
    expect(attempts.map((a) => [a.attempt, a.outcome, a.exit_code])).toEqual([
      [1, 'exited', 1],
      [2, 'exited', 0],
    ]);
    const status = await runCli(['job', 'status', 'flaky'], { env: head.env });
    expect(status.stdout).toMatch(/ATTEMPT/);
    expect(await head.client.getLogs('flaky')).toMatch(/attempt 1 failed \(ENTRYPOINT_FAILED: exited with code 1\); retrying in 0\.2s/);

    const never = await runCli(['job', 'submit', '--submission-id', 'never', '--max-retries', '2', '--retry-backoff', '0.1', '--', 'exit 9'], { env: head.env });
    expect(never.code).toBe(9);
    expect((await head.client.getJob('never')).raysub.tasks?.[0]?.attempts).toHaveLength(3);
  });

  it('times a task out, killing its tree', async () => {
    const head = await startHead({ numCpus: 1 });
    const started = Date.now();
    const res = await runCli(['job', 'submit', '--submission-id', 'slow', '--timeout', '1', '--', 'sleep 3031 & echo started; wait'], { env: head.env });
    expect(res.code).toBe(1);
    expect(Date.now() - started).toBeLessThan(15_000);
    const job = await head.client.getJob('slow');
    expect(job).toMatchObject({ status: 'FAILED', error_type: 'JOB_SUPERVISOR_ACTOR_UNKNOWN_FAILURE', raysub: { error_type: 'TIMEOUT' } });
    expect(res.stdout).toContain('started');
    await waitFor(() => processesWith('sleep 3031').length === 0, { what: 'the timed-out child to be gone' });
  });
});

describe('surviving failures', () => {
  it('retries a task elsewhere when its agent is SIGKILLed, and fails it as NODE_LOST without retries', async () => {
    const head = await startHead({ localAgent: false, args: FAST });
    const a = await startAgent(head, { name: 'a', numCpus: 1 });
    const b = await startAgent(head, { name: 'b', numCpus: 1 });
    const agents = { a, b };
    const body = 'if [ "$RAYSUB_ATTEMPT" -ge 2 ]; then echo "done on retry"; exit 0; fi; while true; do echo tick; sleep 0.1; done';
    await submit(head, { submission_id: 'survivor', entrypoint: body, raysub: { max_retries: 1, retry_backoff_s: 0 } });
    const running = await waitFor(async () => {
      const j = await head.client.getJob('survivor');
      return j.status === 'RUNNING' ? j : null;
    });
    const victimName = running.raysub.tasks?.[0]?.node_name as 'a' | 'b';
    await agents[victimName].kill('SIGKILL');
    const job = await waitTerminal(head, 'survivor');
    expect(job.status).toBe('SUCCEEDED');
    const attempts = job.raysub.tasks?.[0]?.attempts ?? [];
    expect(attempts.map((x) => [x.node_name, x.outcome, x.error_type])).toEqual([
      [victimName, 'lost', 'NODE_LOST'],
      [victimName === 'a' ? 'b' : 'a', 'exited', null],
    ]);
    expect(await head.client.getLogs('survivor')).toContain('done on retry');
    expect((await head.client.nodes()).find((n) => n.node_name === victimName)?.state).toBe('LOST');

    await submit(head, { submission_id: 'orphan', entrypoint: 'sleep 60' });
    await waitFor(async () => (await head.client.getJob('orphan')).status === 'RUNNING');
    await agents[victimName === 'a' ? 'b' : 'a'].kill('SIGKILL');
    const orphan = await waitTerminal(head, 'orphan');
    expect(orphan).toMatchObject({ status: 'FAILED', error_type: 'JOB_SUPERVISOR_ACTOR_DIED', raysub: { error_type: 'NODE_LOST' } });
  });

  it('fences an agent that comes back after being declared lost: its stale task is killed, nothing is recorded twice', async () => {
    const head = await startHead({ localAgent: false, args: FAST });
    const a = await startAgent(head, { name: 'a', numCpus: 1 });
    const body = 'echo "attempt $RAYSUB_ATTEMPT"; if [ "$RAYSUB_ATTEMPT" -ge 2 ]; then sleep 1; exit 0; fi; exec sleep 3041';
    await submit(head, { submission_id: 'fenced', entrypoint: body, raysub: { max_retries: 1, retry_backoff_s: 0 } });
    await waitFor(async () => (await head.client.getLogs('fenced')).includes('attempt 1'));
    await waitFor(() => processesWith('sleep 3041').length > 0, { what: 'the first attempt to run' });
    // Only now does a second node exist, so the retry must land there.
    await startAgent(head, { name: 'b', numCpus: 1 });
    a.proc.kill('SIGSTOP');
    const job = await waitTerminal(head, 'fenced');
    expect(job.status).toBe('SUCCEEDED');
    expect(processesWith('sleep 3041').length).toBeGreaterThan(0); // the frozen agent's worker still runs: only the agent froze
    a.proc.kill('SIGCONT');
    // The revived agent learns it was lost, kills the stale attempt and registers again.
    await waitFor(() => processesWith('sleep 3041').length === 0, { what: 'the stale attempt to be killed' });
    await waitFor(async () => (await head.client.nodes()).filter((n) => n.node_name === 'a' && n.state === 'ALIVE').length === 1, {
      what: 'agent a to register again',
    });
    const after = await head.client.getJob('fenced');
    expect(after.status).toBe('SUCCEEDED');
    expect(after.raysub.tasks?.[0]?.attempts.map((x) => [x.node_name, x.outcome])).toEqual([
      ['a', 'lost'],
      ['b', 'exited'],
    ]);
    expect(after.end_time).toBe(job.end_time);
    expect((await head.client.getLogs('fenced')).match(/attempt 1\n/g)).toHaveLength(1);
  });

  it('survives SIGKILL of the head with 20 jobs in flight: every job ends once, in the right state, with its whole log', async () => {
    let head = await startHead({ localAgent: false, args: ['--heartbeat-ms', '200', '--lease-ms', '8000'] });
    await startAgent(head, { name: 'a', numCpus: 2 });
    await startAgent(head, { name: 'b', numCpus: 2 });
    const script = 'for k in 0 1 2 3 4 5 6 7 8 9; do echo "$JOB line $k"; sleep 0.15; done; exit $CODE';
    const expected = new Map<string, number>();
    for (let i = 0; i < 20; i++) {
      const id = `inflight-${i}`;
      const code = i % 5 === 0 ? 3 : 0;
      expected.set(id, code);
      await submit(head, { submission_id: id, entrypoint: script, runtime_env: { env_vars: { JOB: id, CODE: String(code) } } });
    }
    await waitFor(async () => (await head.client.getLogs('inflight-0')).includes('line 3'));
    await head.kill('SIGKILL');
    // Agents keep their workers running and buffer what the head has not acknowledged.
    await new Promise((r) => setTimeout(r, 1500));
    head = await startHead({ localAgent: false, args: ['--heartbeat-ms', '200', '--lease-ms', '8000'], dataDir: head.dataDir, port: Number(new URL(head.url).port) });
    for (const [id, code] of expected) {
      const job = await waitTerminal(head, id, 90_000);
      expect(job.status, id).toBe(code ? 'FAILED' : 'SUCCEEDED');
      expect(job.driver_exit_code).toBe(code);
      expect(job.raysub.tasks?.[0]?.attempts, `${id} ran once`).toHaveLength(1);
      const lines = (await head.client.getLogs(id)).split('\n').filter(Boolean);
      expect(lines, id).toEqual(Array.from({ length: 10 }, (_, k) => `${id} line ${k}`));
    }
    expect((await head.client.listJobs()).jobs).toHaveLength(20);
  });

  it('drains an agent on SIGTERM: nothing new lands on it, its running task finishes, then it leaves', async () => {
    const head = await startHead({ localAgent: false, args: FAST });
    const a = await startAgent(head, { name: 'a', numCpus: 1 });
    await submit(head, { submission_id: 'finishing', entrypoint: 'sleep 2; echo finished' });
    await waitFor(async () => (await head.client.getJob('finishing')).status === 'RUNNING');
    a.proc.kill('SIGTERM');
    await waitFor(async () => (await head.client.nodes()).find((n) => n.node_name === 'a')?.state === 'DRAINING', { what: 'the node to drain' });
    await submit(head, { submission_id: 'waits', entrypoint: 'echo later' });
    const done = await waitTerminal(head, 'finishing');
    expect(done.status).toBe('SUCCEEDED');
    expect(await head.client.getLogs('finishing')).toBe('finished\n');
    await waitFor(() => a.proc.exitCode !== null, { what: 'the drained agent to exit' });
    expect(a.proc.exitCode).toBe(0);
    expect((await head.client.nodes()).find((n) => n.node_name === 'a')?.state).toBe('LOST');
    expect((await head.client.getJob('waits')).status).toBe('PENDING');
    await startAgent(head, { name: 'b', numCpus: 1 });
    expect((await waitTerminal(head, 'waits')).status).toBe('SUCCEEDED');
  });

  it('exports Prometheus metrics', async () => {
    const head = await startHead({ numCpus: 2 });
    await runCli(['job', 'submit', '--', 'true'], { env: head.env });
    const res = await fetch(`${head.url}/metrics`, { headers: { authorization: `Bearer ${head.token}` } });
    const text = await res.text();
    expect(text).toMatch(/raysub_jobs\{status="SUCCEEDED"\} 1/);
    expect(text).toMatch(/raysub_queue_length 0/);
    expect(text).toMatch(/raysub_node_cpus_total\{node="[^"]+"\} 2/);
    expect(text).toMatch(/raysub_scheduling_latency_seconds_count 1/);
  });
});
