/**
 * Resources as Ray's job server treats them, through Ray 2.58's SDK: no CPUs unless asked, memory
 * a scheduling resource unless the job asks raysub for a limit, a request no node can meet waiting
 * (with its reason) until a node that can run it joins, and a job that asks for no resources on the
 * head node unless RAY_JOB_ALLOW_DRIVER_ON_WORKER_NODES=1. raysub's own CLI keeps its defaults.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { runCli, startAgent, startHead, waitFor, type TestHead } from './helpers/cluster.js';
import { runRayScript } from './helpers/rayClient.js';
import { ensureRayVenv } from './helpers/rayVenv.js';

let skipReason: string | null = null;

beforeAll(async () => {
  skipReason = await ensureRayVenv();
  if (skipReason) console.log(`ray-compat-resources tests skipped: ${skipReason}`);
}, 600_000);

/** A driver that holds 300 MiB for a moment. */
const HUNGRY = `python3 -c "x = bytearray(300 * 2**20); print('holding', len(x) // 2**20, 'MiB')"`;

async function nodeNameOf(head: TestHead, id: string): Promise<string | null> {
  return (await head.client.getJob(id)).raysub.driver_node?.name ?? null;
}

describe("resources as Ray's job server treats them", () => {
  it('asks for no CPUs unless told: three jobs run at once on a two-CPU head; raysub\'s CLI keeps 1 CPU each', async (ctx) => {
    if (skipReason) return ctx.skip();
    const head = await startHead({ numCpus: 2 });
    const out = await runRayScript<{ statuses: string[] }>(
      head,
      `
ids = [c.submit_job(entrypoint="sleep 60", submission_id=f"free-{i}") for i in range(3)]
for jid in ids:
    wait_status(jid, JobStatus.RUNNING)
out["statuses"] = [c.get_job_status(jid).value for jid in ids]
for jid in ids:
    c.stop_job(jid)
for jid in ids:
    wait_end(jid)
`,
    );
    expect(out.statuses).toEqual(['RUNNING', 'RUNNING', 'RUNNING']);

    for (const i of [0, 1, 2]) expect((await runCli(['job', 'submit', '--no-wait', '--submission-id', `cli-${i}`, '--', 'sleep', '60'], { env: head.env })).code).toBe(0);
    await waitFor(async () => (await head.client.getJob('cli-1')).status === 'RUNNING' && (await head.client.getJob('cli-0')).status === 'RUNNING');
    const third = await head.client.getJob('cli-2');
    expect(third.status).toBe('PENDING');
    expect(third.raysub.queue?.reason).toMatch(/^needs 1 CPUs?; largest free: 0/);
    for (const i of [0, 1, 2]) await head.client.stopJob(`cli-${i}`);
  });

  it('places by a memory request without enforcing it, unless the job asks for a limit', async (ctx) => {
    if (skipReason) return ctx.skip();
    const head = await startHead({ numCpus: 2 });
    const [node] = await head.client.nodes();
    if (!node?.sandbox.cgroups) {
      console.log(`memory limits not tested: this node enforces none (${node?.sandbox.detail ?? 'no node'})`);
      return ctx.skip();
    }
    const out = await runRayScript<{ status: string; logs: string; task: string; taskLogs: string }>(
      head,
      `
jid = c.submit_job(entrypoint=${JSON.stringify(HUNGRY)}, submission_id="asked-64m", entrypoint_memory=64 * 2**20)
info = wait_end(jid)
out["status"] = info.status.value
out["logs"] = c.get_job_logs(jid)
# The job's own tasks run in workers held to the job's memory limit: here there is none.
import tempfile, os
d = tempfile.mkdtemp()
with open(os.path.join(d, "tasks.py"), "w") as f:
    f.write("import ray\\n@ray.remote\\ndef hold():\\n    x = bytearray(300 * 2**20)\\n    return len(x) // 2**20\\nprint('task held', ray.get(hold.remote()), 'MiB')\\n")
jid = c.submit_job(entrypoint="python3 tasks.py", submission_id="task-64m", entrypoint_memory=64 * 2**20, runtime_env={"working_dir": d})
out["task"] = wait_end(jid).status.value
out["taskLogs"] = c.get_job_logs(jid)
`,
    );
    expect(out.status).toBe('SUCCEEDED');
    expect(out.logs).toContain('holding 300 MiB');
    expect(out.task, out.taskLogs).toBe('SUCCEEDED');
    expect(out.taskLogs).toContain('task held 300 MiB');

    // Asked for through raysub's own block: a limit the kernel enforces.
    await head.client.submitJob({ submission_id: 'limited', entrypoint: HUNGRY, entrypoint_memory: 64 * 2 ** 20, raysub: { memory_limit: true } });
    const limited = await head.client.waitForJob('limited', { timeoutMs: 60_000 });
    expect(limited).toMatchObject({ status: 'FAILED', raysub: { error_type: 'OOM_KILLED', memory_limit: true } });

    // raysub's CLI: a limit by default, placement only with --no-memory-limit.
    const cli = await runCli(['job', 'submit', '--entrypoint-memory', '64M', '--', 'sh', '-c', HUNGRY], { env: head.env });
    expect(cli.code).toBe(1);
    expect(cli.stderr).toContain('OOM_KILLED');
    const placed = await runCli(['job', 'submit', '--entrypoint-memory', '64M', '--no-memory-limit', '--', 'sh', '-c', HUNGRY], { env: head.env });
    expect(placed.code, placed.stderr).toBe(0);
    expect(placed.stdout).toContain('holding 300 MiB');
  });

  it('keeps a request no node can meet waiting with its reason until a node that can run it joins; fails fast only when asked', async (ctx) => {
    if (skipReason) return ctx.skip();
    const head = await startHead({ numCpus: 2 });
    const out = await runRayScript<{ status: string; message: string }>(
      head,
      `
jid = c.submit_job(entrypoint="echo ran on a big node", submission_id="big", entrypoint_num_cpus=8)
time.sleep(1)
info = c.get_job_info(jid)
out["status"] = info.status.value
out["message"] = info.message
`,
    );
    expect(out.status).toBe('PENDING');
    expect(out.message).toMatch(
      /^Job has not started yet\. It may be waiting for resources \(CPUs, GPUs, memory, custom resources\) to become available\. \(no node can ever provide 8 CPUs \(largest node .+ has 2\); waiting for one to join\)$/,
    );
    await startAgent(head, { name: 'big-node', numCpus: 8 });
    const big = await head.client.waitForJob('big', { timeoutMs: 60_000 });
    expect(big.status).toBe('SUCCEEDED');
    expect(big.raysub.driver_node?.name).toBe('big-node');

    // The job asks to fail fast.
    await head.client.submitJob({ submission_id: 'eager', entrypoint: 'true', entrypoint_num_cpus: 64, raysub: { wait_for_capacity: false } });
    expect(await head.client.waitForJob('eager', { timeoutMs: 30_000 })).toMatchObject({ status: 'FAILED', error_type: 'JOB_SUPERVISOR_ACTOR_UNSCHEDULABLE' });

    // The head asks every job that does not say to fail fast.
    const strict = await startHead({ numCpus: 2, env: { RAYSUB_FAIL_UNSCHEDULABLE: '1' } });
    const refused = await runRayScript<{ status: string; error_type: string }>(
      strict,
      `
info = wait_end(c.submit_job(entrypoint="true", entrypoint_num_cpus=64))
out["status"] = info.status.value
out["error_type"] = info.error_type
`,
    );
    expect(refused).toEqual({ status: 'FAILED', error_type: 'JOB_SUPERVISOR_ACTOR_UNSCHEDULABLE' });
  });

  it('runs a job that asks for no resources on the head node, unless RAY_JOB_ALLOW_DRIVER_ON_WORKER_NODES=1', async (ctx) => {
    if (skipReason) return ctx.skip();
    for (const allow of [false, true]) {
      const head = await startHead({ numCpus: 2, env: allow ? { RAY_JOB_ALLOW_DRIVER_ON_WORKER_NODES: '1' } : {} });
      await startAgent(head, { name: 'worker-1', numCpus: 4 });
      await waitFor(async () => (await head.client.nodes()).length === 2, { what: 'both nodes' });
      await runRayScript(
        head,
        `
for jid in [c.submit_job(entrypoint="true", submission_id=f"bare-{i}") for i in range(2)] + [c.submit_job(entrypoint="true", submission_id="one-cpu", entrypoint_num_cpus=1)]:
    wait_end(jid)
`,
      );
      const where = { bare0: await nodeNameOf(head, 'bare-0'), bare1: await nodeNameOf(head, 'bare-1'), oneCpu: await nodeNameOf(head, 'one-cpu') };
      // The worker has the most free CPUs: what is free to go anywhere goes there.
      if (allow) expect(where).toEqual({ bare0: 'worker-1', bare1: 'worker-1', oneCpu: 'worker-1' });
      else {
        expect(where.bare0).not.toBe('worker-1');
        expect(where.bare1).toBe(where.bare0);
        expect(where.oneCpu).toBe('worker-1');
        expect((await head.client.getJob('bare-0')).raysub.driver_on_head).toBe(true);
      }
    }
  });
});
