/**
 * A hostile job against its agent's job socket: frames written by hand (test/fixtures/hostile),
 * not by raysub's library. Ids that would name paths, frames larger than the job may send,
 * malformed frames and floods each get a clear error; nothing reaches the host, the agent's
 * memory stays flat, and the agent keeps serving the next job.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { execFileSync } from 'node:child_process';
import { repoRoot, runCli, startAgent, startHead, tempDir, waitFor, workingDir } from './helpers/cluster.js';

const FIXTURES = path.join(repoRoot, 'test', 'fixtures', 'hostile');

function checks(stdout: string): Map<string, Record<string, unknown>> {
  const out = new Map<string, Record<string, unknown>>();
  for (const m of stdout.matchAll(/\{"check".*\}$/gm)) {
    const rec = JSON.parse(m[0]) as Record<string, unknown>;
    out.set(String(rec.check), rec);
  }
  return out;
}

/** The largest RSS each process reached, sampled every 20 ms until `stop()`. */
function rssSampler(pids: Record<string, number>): { stop(): Record<string, number> } {
  const peak: Record<string, number> = {};
  const sample = (): void => {
    for (const [name, pid] of Object.entries(pids)) {
      const kb = Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
      peak[name] = Math.max(peak[name] ?? 0, kb * 1024);
    }
  };
  sample();
  const timer = setInterval(sample, 20);
  onTestFinished(() => clearInterval(timer));
  return {
    stop: () => {
      clearInterval(timer);
      sample();
      return peak;
    },
  };
}

function rss(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) * 1024;
}

async function cluster(): Promise<{ head: Awaited<ReturnType<typeof startHead>>; agent: Awaited<ReturnType<typeof startAgent>> }> {
  const head = await startHead({ localAgent: false, args: ['--heartbeat-ms', '200'] });
  const agent = await startAgent(head, { name: 'a', numCpus: 2 });
  return { head, agent };
}

describe('hostile in-job traffic', () => {
  it('refuses object ids that are not ids (traversal, separators, NUL, empty, too long) and ids used twice', async () => {
    const { head, agent } = await cluster();
    const target = tempDir('raysub-hostile-target-');
    const res = await runCli(['job', 'submit', '--working-dir', FIXTURES, '--entrypoint-num-cpus', '0', '--', 'python3', 'ids.py', target], { env: head.env, timeoutMs: 120_000 });
    expect(res.code, res.stdout + res.stderr).toBe(0);
    const codes = checks(res.stdout).get('ids')?.codes as Record<string, string>;
    expect(Object.keys(codes)).toHaveLength(8 * 4 + 1);
    for (const [what, code] of Object.entries(codes)) {
      if (what === 'duplicate') expect(code).toBe('DUPLICATE_ID');
      else expect(code, what).toBe('INVALID_MESSAGE');
    }
    // Nothing was written where the ids pointed, nor anywhere in the agent's work dir but its own store.
    expect(fs.readdirSync(target)).toEqual([]);
    expect(fs.existsSync(path.join(agent.workDir, 'put'))).toBe(false);
    const nodes = await head.client.nodes();
    expect(nodes[0]?.state).toBe('ALIVE');
  }, 150_000);

  it('a job limited to 100 MiB that sends a 1 GiB frame fails with a clear error; neither the agent nor the head grows', async () => {
    const { head, agent } = await cluster();
    // A job of the same package first: what running any job costs the agent is not counted.
    const warm = await runCli(['job', 'submit', '--working-dir', FIXTURES, '--entrypoint-num-cpus', '0', '--entrypoint-memory', '100M', '--', 'python3', '-c', 'import wire; wire.connect()'], { env: head.env });
    expect(warm.code, warm.stdout + warm.stderr).toBe(0);
    const pids = { agent: agent.proc.pid ?? 0, head: head.pid };
    const before = { agent: rss(pids.agent), head: rss(pids.head) };
    const peaks = rssSampler(pids);
    const res = await runCli(['job', 'submit', '--submission-id', 'huge', '--working-dir', FIXTURES, '--entrypoint-num-cpus', '0', '--entrypoint-memory', '100M', '--', 'python3', 'frames.py', 'huge'], {
      env: head.env,
      timeoutMs: 120_000,
    });
    const peak = peaks.stop();
    expect(res.code, res.stdout + res.stderr).toBe(1);
    const job = await head.client.getJob('huge');
    expect(job.status).toBe('FAILED');
    expect(job.raysub.error_type).toBe('INJOB_LIMIT_EXCEEDED');
    expect(job.raysub.message).toMatch(/a frame of 1\.0 GiB from a process limited to 100\.0 MiB/);
    for (const name of ['agent', 'head'] as const) {
      const grew = (peak[name] ?? 0) - before[name];
      console.log(`${name} RSS: ${(before[name] / 2 ** 20).toFixed(1)} MiB before, peak ${((peak[name] ?? 0) / 2 ** 20).toFixed(1)} MiB (+${(grew / 2 ** 20).toFixed(1)} MiB)`);
      expect(grew, name).toBeLessThan(64 * 1024 * 1024);
    }
    expect((await head.client.nodes())[0]?.state).toBe('ALIVE');
  }, 150_000);

  it('answers malformed frames with their error code, answers a repeated get once, and keeps serving the job', async () => {
    const { head } = await cluster();
    const res = await runCli(['job', 'submit', '--working-dir', FIXTURES, '--entrypoint-num-cpus', '0', '--', 'python3', 'malformed.py'], { env: head.env, timeoutMs: 120_000 });
    expect(res.code, res.stdout + res.stderr).toBe(0);
    const c = checks(res.stdout);
    expect(c.get('malformed')?.answers).toEqual({
      'zero-header': 'INVALID_FRAME',
      'not-json': 'INVALID_FRAME',
      'not-an-object': 'INVALID_MESSAGE',
      'unknown-type': 'INVALID_MESSAGE',
      'missing-field': 'INVALID_MESSAGE',
      'before-hello': 'UNAUTHORIZED',
      'wrong-token': 'UNAUTHORIZED',
      'unknown-worker': 'UNAUTHORIZED',
      'hello-twice': 'INVALID_MESSAGE',
      'result-from-a-driver': 'UNAUTHORIZED',
      'payload-mismatch': 'INVALID_MESSAGE',
      'payload-on-get': 'INVALID_MESSAGE',
      'huge-before-hello': 'INVALID_FRAME',
      garbage: 'INVALID_FRAME',
      'repeated-get': [1, true],
    });
    expect(c.get('still-served')?.value).toBe(49);
  }, 150_000);

  it("a flood of connections to the job socket never takes the descriptors the head and its agent need", async (ctx) => {
    let prlimit: string;
    try {
      prlimit = execFileSync('sh', ['-c', 'command -v prlimit'], { encoding: 'utf8' }).trim();
    } catch {
      console.warn(`skipping "${ctx.task.name}": no prlimit on this machine`);
      return ctx.skip();
    }
    // A head with its embedded agent and 1,024 descriptors: its jobs may hold 128 connections.
    const head = await startHead({ numCpus: 2, prefix: [prlimit, '--nofile=1024:1024', '--'] });
    const dir = workingDir({
      'flood.py': `
import os, socket, time
path = os.environ["RAYSUB_TASK_SOCKET"]
kids = []
for k in range(4):
    pid = os.fork()
    if pid == 0:
        socks = []
        for i in range(1000):
            try:
                s = socket.socket(socket.AF_UNIX)
                s.connect(path)
                socks.append(s)
            except OSError:
                pass
        time.sleep(3)
        os._exit(0)
    kids.append(pid)
for p in kids:
    os.waitpid(p, 0)
print("flooded", flush=True)
`,
      'ok.py': 'print("served")\n',
    });
    let peak = 0;
    const fds = (): number => fs.readdirSync(`/proc/${head.pid}/fd`).length;
    const timer = setInterval(() => (peak = Math.max(peak, fds())), 20);
    onTestFinished(() => clearInterval(timer));
    const flood = runCli(['job', 'submit', '--working-dir', dir, '--entrypoint-num-cpus', '0', '--', 'python3', 'flood.py'], { env: head.env, timeoutMs: 120_000 });
    // While the flood holds its connections, the head answers.
    await waitFor(() => peak > 150, { what: 'the flood to start', timeoutMs: 60_000 });
    expect((await head.client.nodes()).length).toBe(1);
    const res = await flood;
    clearInterval(timer);
    expect(res.code, res.stdout + res.stderr).toBe(0);
    expect(res.stdout).toContain('flooded');
    // 4,000 connections tried; the head's descriptors stayed well under its limit.
    expect(peak).toBeLessThan(700);
    const next = await runCli(['job', 'submit', '--working-dir', dir, '--', 'python3', 'ok.py'], { env: head.env });
    expect(next.code, next.stderr).toBe(0);
    expect(next.stdout).toContain('served');
  }, 150_000);

  it('a job over its share of the agent (records of made-up ids, queued tasks\' arguments) is failed, and the agent stays flat and serving', async () => {
    const { head, agent } = await cluster();
    const submit = (id: string, mode: string, cpus: string) =>
      runCli(['job', 'submit', '--submission-id', id, '--working-dir', FIXTURES, '--entrypoint-num-cpus', cpus, '--entrypoint-memory', '16M', '--', 'python3', 'frames.py', mode], { env: head.env, timeoutMs: 120_000 });
    const warm = await runCli(['job', 'submit', '--working-dir', FIXTURES, '--entrypoint-num-cpus', '0', '--entrypoint-memory', '16M', '--', 'python3', '-c', 'import wire; wire.connect()'], { env: head.env });
    expect(warm.code, warm.stdout + warm.stderr).toBe(0);
    const pids = { agent: agent.proc.pid ?? 0, head: head.pid };
    // Gets for 400,000 ids nobody makes; then 1,000 tasks of 100 KiB that cannot start (the driver holds both CPUs).
    for (const [id, mode, cpus, what] of [
      ['gets', 'made-up-gets', '0', /would make the agent hold 16\.0 MiB of memory for this job; its share is 16\.0 MiB/],
      ['queued', 'submit-over-share', '2', /would make the agent hold 16\.\d MiB of memory for this job; its share is 16\.0 MiB/],
    ] as const) {
      const before = { agent: rss(pids.agent), head: rss(pids.head) };
      const peaks = rssSampler(pids);
      const res = await submit(id, mode, cpus);
      const peak = peaks.stop();
      expect(res.code, res.stdout + res.stderr).toBe(1);
      const job = await head.client.getJob(id);
      expect(job.raysub.error_type).toBe('INJOB_LIMIT_EXCEEDED');
      expect(job.raysub.message).toMatch(what);
      for (const name of ['agent', 'head'] as const) {
        const grew = (peak[name] ?? 0) - before[name];
        console.log(`${id}: ${name} RSS ${(before[name] / 2 ** 20).toFixed(1)} MiB before, peak ${((peak[name] ?? 0) / 2 ** 20).toFixed(1)} MiB (+${(grew / 2 ** 20).toFixed(1)} MiB)`);
        expect(grew, name).toBeLessThan(64 * 1024 * 1024);
      }
    }
    // The node is whole again and serves the next job at once.
    const nodes = await head.client.nodes();
    expect(nodes[0]?.free.num_cpus).toBe(2);
    await head.client.submitJob({ submission_id: 'after', entrypoint: 'true', entrypoint_num_cpus: 2 });
    expect((await head.client.waitForJob('after', { timeoutMs: 60_000 })).status).toBe('SUCCEEDED');
  }, 240_000);
});
