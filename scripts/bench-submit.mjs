#!/usr/bin/env node
// Time from submit to SUCCEEDED of `python3 -c pass` on a warm head, next to running the same
// process directly, in one run. Usage: npm run bench [-- RUNS]
import { execFileSync } from 'node:child_process';
import { RaysubClient } from '../dist/client/index.js';
import { machine, percentile, startHead, timeCommand } from './lib.mjs';

const runs = Number(process.argv[2] ?? 30);
const head = await startHead(['--num-cpus', '2']);
const client = new RaysubClient({ address: head.url, token: head.token, retries: 0 });
try {
  const submitOnce = async (i) => {
    const t0 = process.hrtime.bigint();
    const { submission_id: id } = await client.submitJob({ entrypoint: 'python3 -c pass', submission_id: `bench-${i}`, entrypoint_num_cpus: 1 });
    const job = await client.getJob(id, 60);
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    if (job.status !== 'SUCCEEDED') throw new Error(`job ${id} ended ${job.status}: ${job.message}`);
    return ms;
  };
  for (let i = 0; i < 5; i++) await submitOnce(`warm-${i}`);
  // The agent runs the real interpreter behind any shim (pyenv's python3 is a shell script), so the
  // floor is that interpreter run directly; the shim is timed too, for reference.
  const real = execFileSync('python3', ['-c', 'import sys; print(sys.executable)'], { encoding: 'utf8' }).trim();
  const raysub = [];
  const bare = [];
  const shim = [];
  // Interleave so machine noise hits all alike.
  for (let i = 0; i < runs; i++) {
    bare.push(timeCommand(real, ['-c', 'pass']));
    shim.push(timeCommand('python3', ['-c', 'pass']));
    raysub.push(await submitOnce(i));
  }
  const row = (name, v) => `| ${name} | ${percentile(v, 50).toFixed(1)} | ${percentile(v, 90).toFixed(1)} |`;
  console.log(`machine: ${machine()}`);
  console.log(`runs: ${runs}`);
  console.log('| measurement | median ms | p90 ms |');
  console.log('|---|---|---|');
  console.log(row('`python3 -c pass` through the PATH lookup (a shim here) run directly', shim));
  console.log(row('the real interpreter behind it, `-c pass`, run directly (the floor)', bare));
  console.log(row('submit → SUCCEEDED through raysub (SDK, local agent)', raysub));
  console.log(`overhead at the median: ${(percentile(raysub, 50) - percentile(bare, 50)).toFixed(1)} ms over the real interpreter (target < 50 ms)`);
} finally {
  await client.close();
  await head.stop();
}
