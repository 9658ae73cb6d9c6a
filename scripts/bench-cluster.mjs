#!/usr/bin/env node
// Cluster benchmark, in one run:
//  1. 1,000 trivial tasks (`python3 -c pass`, one array job) across two agents with 1 CPU each,
//     next to the floor: the same 1,000 processes launched directly, 2 at a time.
//  2. The head's RSS after 10,000 finished jobs, and the time of `job list --limit 100` at that size.
// Usage: npm run bench:cluster [-- TASKS JOBS]
import { execFileSync, spawnSync } from 'node:child_process';
import { RaysubClient } from '../dist/client/index.js';
import { cli, machine, percentile, rssMiB, runPool, startAgent, startHead } from './lib.mjs';

const tasks = Number(process.argv[2] ?? 1000);
const jobs = Number(process.argv[3] ?? 10_000);
console.log(`machine: ${machine()}`);

// --- 1. throughput ---------------------------------------------------------------------------
/**
 * One array job of `tasks` copies of `entrypoint`, 1 CPU each (asked for: over REST a job holds no
 * CPU unless it asks, as in Ray), on two agents with 1 CPU each; wall ms.
 */
async function arrayJob(entrypoint, agentArgs) {
  const head = await startHead(['--no-local-agent']);
  const client = new RaysubClient({ address: head.url, token: head.token, retries: 0 });
  const agents = [await startAgent(head, client, 'a', ['--num-cpus', '1', ...agentArgs]), await startAgent(head, client, 'b', ['--num-cpus', '1', ...agentArgs])];
  try {
    // Warm up both agents and the interpreter's page cache.
    await client.submitJob({ entrypoint, submission_id: 'warm', entrypoint_num_cpus: 1, raysub: { parallel: 4 } });
    await client.waitForJob('warm');
    const t0 = process.hrtime.bigint();
    await client.submitJob({ entrypoint, submission_id: 'tput', entrypoint_num_cpus: 1, raysub: { parallel: tasks } });
    const job = await client.waitForJob('tput');
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    if (job.status !== 'SUCCEEDED') throw new Error(`throughput job ended ${job.status}: ${job.message}`);
    return ms;
  } finally {
    for (const a of agents) await a.stop();
    await client.close();
    await head.stop();
  }
}

if (tasks > 0) {
  // Agents run the real interpreter behind any shim on PATH, so the floor runs that one too.
  const real = execFileSync('python3', ['-c', 'import sys; print(sys.executable)'], { encoding: 'utf8' }).trim();
  const floorMs = await runPool(real, ['-c', 'pass'], tasks, 2);
  const sandboxed = await arrayJob('python3 -c pass', []);
  const fresh = await arrayJob('python3 -c pass', ['--no-sandbox-reuse']);
  const bare = await arrayJob(`${real} -c pass`, ['--sandbox', 'none']);
  const rate = (ms) => tasks / (ms / 1000);
  const floor = rate(floorMs);
  console.log(`\n${tasks} tasks of \`python3 -c pass\`, 2 CPUs in all`);
  console.log('| run | wall s | tasks/s | of the floor |');
  console.log('|---|---|---|---|');
  console.log(`| floor: the real interpreter launched directly, 2 at a time | ${(floorMs / 1000).toFixed(1)} | ${floor.toFixed(1)} | 100% |`);
  for (const [name, ms] of [
    ['raysub: one array job, two agents × 1 CPU, bubblewrap sandbox and cgroups (the default: a job\'s consecutive tasks reuse a sandbox, emptied between them)', sandboxed],
    ['raysub: the same with `--no-sandbox-reuse` (a new sandbox per task)', fresh],
    ['raysub: the same with `--sandbox none` (no isolation, no limits)', bare],
  ]) {
    console.log(`| ${name} | ${(ms / 1000).toFixed(1)} | ${rate(ms).toFixed(1)} | ${((100 * rate(ms)) / floor).toFixed(0)}% |`);
  }
  console.log('target: >= 70% of the floor');
}

// --- 2. memory and listing at 10,000 finished jobs -----------------------------------------------
if (jobs > 0) {
  const head = await startHead(['--num-cpus', '2']);
  const client = new RaysubClient({ address: head.url, token: head.token, retries: 0 });
  try {
    const rssStart = rssMiB(head.pid);
    const t0 = Date.now();
    let next = 0;
    const submitter = async () => {
      while (next < jobs) {
        const i = next++;
        await client.submitJob({ entrypoint: 'true', submission_id: `many-${i}`, entrypoint_num_cpus: 0.1 });
      }
    };
    await Promise.all(Array.from({ length: 16 }, submitter));
    for (;;) {
      const { jobs: live } = await client.listJobs({ status: ['PENDING', 'RUNNING'], limit: 1 });
      if (live.length === 0) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    const filledS = (Date.now() - t0) / 1000;
    if (global.gc) global.gc();
    await new Promise((r) => setTimeout(r, 2000));
    const rss = rssMiB(head.pid);
    const api = [];
    for (let i = 0; i < 30; i++) {
      const t = process.hrtime.bigint();
      const { jobs: page } = await client.listJobs({ limit: 100 });
      api.push(Number(process.hrtime.bigint() - t) / 1e6);
      if (page.length !== 100) throw new Error('short page');
    }
    const cliTimes = [];
    const nodeTimes = [];
    for (let i = 0; i < 7; i++) {
      let t = process.hrtime.bigint();
      const r = spawnSync(process.execPath, [cli, 'job', 'list', '--limit', '100', '--json'], { env: { ...process.env, RAYSUB_ADDRESS: head.url, RAYSUB_TOKEN: head.token }, stdio: ['ignore', 'pipe', 'inherit'] });
      cliTimes.push(Number(process.hrtime.bigint() - t) / 1e6);
      if (r.status !== 0) throw new Error('job list failed');
      t = process.hrtime.bigint();
      spawnSync(process.execPath, ['-e', '0']);
      nodeTimes.push(Number(process.hrtime.bigint() - t) / 1e6);
    }
    console.log(`\n${jobs} jobs submitted and finished in ${filledS.toFixed(0)} s`);
    console.log('| measurement | value |');
    console.log('|---|---|');
    console.log(`| head RSS at start | ${rssStart.toFixed(0)} MiB |`);
    console.log(`| head RSS after ${jobs} finished jobs | ${rss.toFixed(0)} MiB (target < 150 MB) |`);
    console.log(`| \`GET /api/jobs/?limit=100\`, median of 30 | ${percentile(api, 50).toFixed(1)} ms (p90 ${percentile(api, 90).toFixed(1)}; target < 50 ms) |`);
    console.log(`| \`raysub job list --limit 100 --json\` (whole CLI process), median of 7 | ${percentile(cliTimes, 50).toFixed(0)} ms |`);
    console.log(`| \`node -e 0\` (process floor for the line above), median of 7 | ${percentile(nodeTimes, 50).toFixed(0)} ms |`);
  } finally {
    await client.close();
    await head.stop();
  }
}
