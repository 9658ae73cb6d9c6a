#!/usr/bin/env node
// Separate trivial jobs: N × `python3 -c pass`, each its own job, submitted over REST at once to a
// head with its embedded agent (2 CPUs, the default sandbox), from the first submission until the
// last job SUCCEEDED; next to the floor measured in the same run: the same N processes of the real
// interpreter launched directly, 2 at a time (what `xargs -P2` does). A job's first sandbox is where
// its time goes: unlike an array's tasks, separate jobs do not share one.
// Usage: npm run bench:jobs [-- N ROUNDS]
import { execFileSync } from 'node:child_process';
import { RaysubClient } from '../dist/client/index.js';
import { machine, percentile, runPool, startHead } from './lib.mjs';

const n = Number(process.argv[2] ?? 200);
const rounds = Number(process.argv[3] ?? 3);
console.log(`machine: ${machine()}`);
const real = execFileSync('python3', ['-c', 'import sys; print(sys.executable)'], { encoding: 'utf8' }).trim();

async function jobs(head, client, round) {
  const ids = Array.from({ length: n }, (_, i) => `r${round}-${i}`);
  const t0 = process.hrtime.bigint();
  await Promise.all(ids.map((id) => client.submitJob({ entrypoint: 'python3 -c pass', submission_id: id, entrypoint_num_cpus: 1 })));
  const ends = await Promise.all(ids.map((id) => client.waitForJob(id)));
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  const bad = ends.filter((j) => j.status !== 'SUCCEEDED');
  if (bad.length > 0) throw new Error(`${bad.length} jobs did not succeed: ${bad[0]?.status} ${bad[0]?.message}`);
  return ms;
}

const head = await startHead(['--num-cpus', '2']);
const client = new RaysubClient({ address: head.url, token: head.token, retries: 0 });
const floor = [];
const ours = [];
try {
  await jobs(head, client, 'warm');
  // Interleaved, so both see the same machine.
  for (let r = 0; r < rounds; r++) {
    floor.push(await runPool(real, ['-c', 'pass'], n, 2));
    ours.push(await jobs(head, client, r));
  }
} finally {
  await client.close();
  await head.stop();
}
const f = percentile(floor, 50);
const o = percentile(ours, 50);
console.log(`\n${n} separate jobs of \`python3 -c pass\` (1 CPU each) on a 2-CPU head, ${rounds} rounds interleaved, medians`);
console.log('| run | wall s | jobs/s | of the floor |');
console.log('|---|---|---|---|');
console.log(`| floor: the real interpreter launched directly, 2 at a time (\`xargs -P2\`) | ${(f / 1000).toFixed(2)} | ${(n / (f / 1000)).toFixed(1)} | 100% |`);
console.log(`| raysub: ${n} jobs submitted over REST at once, the embedded agent, bubblewrap sandbox and cgroups | ${(o / 1000).toFixed(2)} | ${(n / (o / 1000)).toFixed(1)} | ${((100 * f) / o).toFixed(0)}% |`);
console.log('target: >= 70% of the floor');
