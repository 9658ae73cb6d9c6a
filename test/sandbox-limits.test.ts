/**
 * Limits, end to end: jobs that use more memory, processes or CPU than they asked for, submitted
 * through the CLI to a real head and agent, and held to their limits by the kernel.
 */
import os from 'node:os';
import { describe, expect, it } from 'vitest';
import { runCli, startHead, waitFor, workingDir } from './helpers/cluster.js';
import { requireSandbox, resultOf, taskCgroups, unique } from './helpers/sandbox.js';

const HOG = `
chunks = []
for i in range(200):
    chunks.append(bytearray(8 * 1024 * 1024))  # bytearray() zero-fills: the pages are really used
    print("holding", (i + 1) * 8, "MiB", flush=True)
print("never killed")
`;

const FORKER = `
import json, os, time
children, error = 0, None
try:
    while True:
        if os.fork() == 0:
            time.sleep(60)
            os._exit(0)
        children += 1
except OSError as e:
    error = e.errno
print("RESULT " + json.dumps({"children": children, "errno": error}), flush=True)
`;

/** Two busy processes for a few seconds; reports the CPU time they got per second of wall time. */
const BURNER = `
import json, multiprocessing as mp, os, resource, time
def burn(seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass
if __name__ == "__main__":
    start = time.monotonic()
    procs = [mp.Process(target=burn, args=(4,)) for _ in range(2)]
    for p in procs: p.start()
    for p in procs: p.join()
    wall = time.monotonic() - start
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    print("RESULT " + json.dumps({"cpus_used": (used.ru_utime + used.ru_stime) / wall, "affinity": sorted(os.sched_getaffinity(0))}), flush=True)
`;

const LIMITS = `
import json, resource
print("RESULT " + json.dumps({"nofile": resource.getrlimit(resource.RLIMIT_NOFILE)}), flush=True)
`;

describe('sandbox limits', () => {
  it('kills a job that uses more memory than it asked for: OOM_KILLED, saying so', async (ctx) => {
    const node = unique('oom');
    const head = await startHead({ numCpus: 2, args: ['--node-name', node] });
    await requireSandbox(head, ctx);
    const dir = workingDir({ 'hog.py': HOG });
    const res = await runCli(['job', 'submit', '--submission-id', 'hog', '--entrypoint-memory', '100M', '--working-dir', dir, '--', 'python3', 'hog.py'], { env: head.env });
    expect(res.code).not.toBe(0);
    expect(res.stdout).toContain('holding 48 MiB');
    expect(res.stdout).not.toContain('never killed');
    const job = await head.client.getJob('hog');
    expect(job).toMatchObject({ status: 'FAILED', error_type: 'JOB_ENTRYPOINT_COMMAND_ERROR', raysub: { error_type: 'OOM_KILLED' } });
    expect(job.raysub.message).toMatch(/exceeding its memory limit of 100\.0 MiB/);
    expect(res.stderr).toContain('OOM_KILLED');
    await waitFor(() => taskCgroups(node).length === 0, { what: 'the task\'s cgroups to be removed' });
  });

  it("holds a job with no memory limit of its own to the node's memory: the kill stays among the node's tasks", async (ctx) => {
    const node = unique('nodemem');
    const head = await startHead({ numCpus: 2, args: ['--node-name', node, '--memory', '300M'] });
    await requireSandbox(head, ctx);
    const dir = workingDir({ 'hog.py': HOG });
    const res = await runCli(['job', 'submit', '--submission-id', 'unbounded', '--no-memory-limit', '--working-dir', dir, '--', 'python3', 'hog.py'], { env: head.env });
    expect(res.code).not.toBe(0);
    expect(res.stdout).toContain('holding 200 MiB');
    expect(res.stdout).not.toContain('holding 320 MiB');
    const job = await head.client.getJob('unbounded');
    expect(job).toMatchObject({ status: 'FAILED', raysub: { error_type: 'OOM_KILLED' } });
    expect(job.raysub.message).toMatch(/this node's tasks together used all the memory the node offers \(--memory\), and it has no memory limit of its own/);
    // The node is still there and runs the next job.
    const next = await runCli(['job', 'submit', '--working-dir', workingDir({ 'ok.py': 'print("still serving")\n' }), '--', 'python3', 'ok.py'], { env: head.env });
    expect(next.code, next.stderr).toBe(0);
    expect(next.stdout).toContain('still serving');
  });

  it('stops a fork bomb at the process limit, and the node keeps working', async (ctx) => {
    const head = await startHead({ numCpus: 2, args: ['--task-pids-max', '64'] });
    await requireSandbox(head, ctx);
    const dir = workingDir({ 'forker.py': FORKER });
    const res = await runCli(['job', 'submit', '--working-dir', dir, '--', 'python3', 'forker.py'], { env: head.env, timeoutMs: 120_000 });
    expect(res.code, res.stderr).toBe(0);
    const r = resultOf<{ children: number; errno: number }>(res.stdout);
    expect(r.errno).toBe(11); // EAGAIN
    expect(r.children).toBeLessThan(64);
    expect(r.children).toBeGreaterThan(10);
    const after = await runCli(['job', 'submit', '--', 'echo still fine'], { env: head.env });
    expect(after.code).toBe(0);
    expect(after.stdout).toContain('still fine');
  });

  it('holds a job to its CPU quota over a measured interval, pins whole CPUs and limits open files', async (ctx) => {
    const head = await startHead({ numCpus: 2, args: ['--task-open-files', '256'] });
    await requireSandbox(head, ctx);
    const dir = workingDir({ 'burn.py': BURNER, 'limits.py': LIMITS });
    const half = await runCli(['job', 'submit', '--entrypoint-num-cpus', '0.5', '--working-dir', dir, '--', 'python3', 'burn.py'], { env: head.env });
    expect(half.code, half.stderr).toBe(0);
    const r = resultOf<{ cpus_used: number; affinity: number[] }>(half.stdout);
    console.log(`two busy processes under a 0.5 CPU quota used ${r.cpus_used.toFixed(3)} CPUs`);
    // Unlimited they would use up to 2; the quota allows 0.5. The tolerance covers accounting edges.
    expect(r.cpus_used).toBeLessThan(0.5 * 1.2);
    expect(r.cpus_used).toBeGreaterThan(0.05);

    if (os.availableParallelism() >= 2) {
      const one = await runCli(['job', 'submit', '--entrypoint-num-cpus', '1', '--working-dir', dir, '--', 'python3', 'burn.py'], { env: head.env });
      const pinned = resultOf<{ cpus_used: number; affinity: number[] }>(one.stdout);
      expect(pinned.affinity).toHaveLength(1);
      expect(pinned.cpus_used).toBeLessThan(1.2);
    } else {
      console.warn('skipping the pinning check: this machine has one CPU');
    }

    const limits = await runCli(['job', 'submit', '--working-dir', dir, '--', 'python3', 'limits.py'], { env: head.env });
    expect(resultOf<{ nofile: number[] }>(limits.stdout).nofile).toEqual([256, 256]);
  });
});
