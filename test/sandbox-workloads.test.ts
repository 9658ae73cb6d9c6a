/**
 * Jobs that behave still work in the sandbox (numpy, multiprocessing, worker threads, child
 * processes), and where bubblewrap is unusable the agent says so, falls back, and refuses jobs
 * that require more.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli, startHead, tempDir, workingDir } from './helpers/cluster.js';
import { requireSandbox } from './helpers/sandbox.js';

const NUMPY = `
import numpy as np
a = np.arange(1_000_000, dtype=np.float64).reshape(1000, 1000)
print("numpy", np.__version__, "trace", float(np.trace(a @ a.T) > 0))
`;

const MULTI = `
import multiprocessing as mp, os
def square(x):
    return x * x
def worker(q, lock):
    with lock:
        q.put(os.getpid())
if __name__ == "__main__":
    with mp.Pool(2) as pool:
        print("pool", sum(pool.map(square, range(100))))
    q, lock = mp.Queue(), mp.Lock()
    procs = [mp.Process(target=worker, args=(q, lock)) for _ in range(3)]
    for p in procs: p.start()
    for p in procs: p.join()
    print("queue", len({q.get() for _ in procs}))
    ctx = mp.get_context("spawn")
    with ctx.Pool(1) as pool:
        print("spawn", pool.apply(square, (7,)))
`;

const NODE = `
const { Worker } = require('node:worker_threads');
const { execFileSync, spawn, fork } = require('node:child_process');
const os = require('node:os');
if (process.argv[2] === 'child') {
  process.send({ pong: process.pid });
  process.exit(0);
}
const w = new Worker('const { parentPort } = require("node:worker_threads"); let s = 0; for (let i = 0; i < 1e6; i++) s += i; parentPort.postMessage(s);', { eval: true });
w.on('message', (s) => {
  console.log('worker', s);
  console.log('exec', execFileSync('sh', ['-c', 'echo from-sh']).toString().trim());
  console.log('heap limit MiB', Math.round(require('node:v8').getHeapStatistics().heap_size_limit / 2 ** 20));
  const c = spawn('node', ['-e', 'console.log(process.version)']);
  c.stdout.on('data', (d) => console.log('spawn', d.toString().trim()));
  c.on('exit', (code) => {
    const f = fork(__filename, ['child']);
    f.on('message', (m) => console.log('fork', typeof m.pong));
    f.on('exit', (fc) => console.log('done', code, fc, os.userInfo().username));
  });
});
`;

function hostHasNumpy(): boolean {
  try {
    execFileSync('python3', ['-c', 'import numpy'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

describe('jobs that behave', () => {
  it('run Python with numpy and multiprocessing, and Node with worker_threads and child_process', async (ctx) => {
    const head = await startHead({ numCpus: 2 });
    await requireSandbox(head, ctx);
    const dir = workingDir({ 'np_job.py': NUMPY, 'multi.py': MULTI, 'node_job.js': NODE });

    if (hostHasNumpy()) {
      const np = await runCli(['job', 'submit', '--working-dir', dir, '--', 'python3', 'np_job.py'], { env: head.env });
      expect(np.code, np.stderr).toBe(0);
      expect(np.stdout).toMatch(/numpy \S+ trace 1\.0/);
    } else {
      console.warn('skipping the numpy job: the agent\'s python3 has no numpy');
    }

    const multi = await runCli(['job', 'submit', '--entrypoint-num-cpus', '2', '--working-dir', dir, '--', 'python3', 'multi.py'], { env: head.env });
    expect(multi.code, multi.stderr).toBe(0);
    expect(multi.stdout).toContain('pool 328350');
    expect(multi.stdout).toContain('queue 3');
    expect(multi.stdout).toContain('spawn 49');

    const node = await runCli(['job', 'submit', '--entrypoint-memory', '512M', '--working-dir', dir, '--', 'node', 'node_job.js'], { env: head.env });
    expect(node.code, node.stderr).toBe(0);
    expect(node.stdout).toContain('worker 499999500000');
    expect(node.stdout).toContain('exec from-sh');
    expect(node.stdout).toMatch(/spawn v\d+/);
    expect(node.stdout).toContain('fork number');
    expect(node.stdout).toContain('done 0 0 raysub');
    // Told its heap limit (75 % of 512 MiB, plus V8's young generation).
    const heap = Number(/heap limit MiB (\d+)/.exec(node.stdout)?.[1]);
    expect(heap).toBeGreaterThanOrEqual(384);
    expect(heap).toBeLessThan(480);
  });
});

describe('GPUs', () => {
  it('shows a task the device nodes of the GPUs it holds and no others', async (ctx) => {
    const head = await startHead({ numCpus: 2, numGpus: 2 });
    await requireSandbox(head, ctx);
    const host = fs.readdirSync('/dev').filter((n) => n.startsWith('nvidia'));
    if (host.length === 0) console.warn('no NVIDIA device nodes on this machine: checking that a GPU task runs and sees none');
    const res = await runCli(['job', 'submit', '--entrypoint-num-gpus', '1', '--', 'echo "cuda=$CUDA_VISIBLE_DEVICES"; ls /dev | grep nvidia || true'], { env: head.env });
    expect(res.code, res.stderr).toBe(0);
    const held = Number(/cuda=(\d+)/.exec(res.stdout)?.[1]);
    expect([0, 1]).toContain(held);
    const seen = res.stdout.split('\n').filter((l) => l.startsWith('nvidia')).sort();
    const expected = host.filter((n) => ['nvidiactl', 'nvidia-uvm', 'nvidia-uvm-tools', 'nvidia-modeset', `nvidia${held}`].includes(n));
    expect(seen).toEqual(expected.sort());
  });
});

describe('without bubblewrap', () => {
  /** A PATH whose first bwrap is one that cannot build a sandbox. */
  function brokenBwrapPath(): string {
    const bin = tempDir('raysub-fakebin-');
    fs.writeFileSync(path.join(bin, 'bwrap'), '#!/bin/sh\necho "bwrap: creating new namespace failed: Operation not permitted" >&2\nexit 1\n', { mode: 0o755 });
    return `${bin}:${process.env.PATH ?? ''}`;
  }

  it('falls back, says so in `raysub nodes`, and refuses jobs that require bwrap', async () => {
    const head = await startHead({ numCpus: 2, env: { PATH: brokenBwrapPath() } });
    const [node] = await head.client.nodes();
    expect(node?.sandbox.mode).toBe('process');
    expect(node?.sandbox.detail).toMatch(/no filesystem isolation \(bubblewrap: a trial sandbox failed: .*Operation not permitted/);
    const table = await runCli(['nodes'], { env: head.env });
    expect(table.stdout).toMatch(/process/);
    expect(table.stdout).toMatch(/Operation not permitted/);

    const strict = await runCli(['job', 'submit', '--submission-id', 'strict', '--runtime-env-json', '{"sandbox": {"require": "bwrap"}}', '--', 'echo never'], { env: head.env });
    expect(strict.code).toBe(1);
    expect(strict.stdout).not.toContain('never');
    // No node has bubblewrap: placement refuses it at once instead of running it weaker.
    expect(await head.client.getJob('strict')).toMatchObject({
      status: 'FAILED',
      error_type: 'JOB_SUPERVISOR_ACTOR_UNSCHEDULABLE',
      message: 'Job supervisor actor could not be scheduled: no node can ever provide a "bwrap" sandbox (the nodes have: process)',
      raysub: { error_type: 'UNSCHEDULABLE', message: 'no node can ever provide a "bwrap" sandbox (the nodes have: process)' },
    });

    const lenient = await runCli(['job', 'submit', '--runtime-env-json', '{"sandbox": {"require": "process"}}', '--', 'echo ran'], { env: head.env });
    expect(lenient.code).toBe(0);
    expect(lenient.stdout).toContain('ran');
  });

  it('refuses to start when the operator asked for bwrap and it is unusable', async () => {
    const res = await runCli(['start', '--head', '--port', '0', '--data-dir', tempDir('raysub-head-'), '--sandbox', 'bwrap'], { env: { PATH: brokenBwrapPath() }, timeoutMs: 30_000 });
    expect(res.code).not.toBe(0);
    expect(res.stderr).toMatch(/--sandbox bwrap: bubblewrap cannot be used on this machine: a trial sandbox failed: bwrap: creating new namespace failed/);
  });
});
