#!/usr/bin/env node
// Cold and warm start of a pip job. Each round starts a fresh head (its embedded agent has an empty
// env cache), submits a job whose runtime_env asks for a package (cold: the agent builds the
// virtualenv), then the same job again (warm: the cached env is reused), and a job with no
// runtime_env for reference. Usage: npm run bench:pip [-- ROUNDS]
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { RaysubClient } from '../dist/client/index.js';
import { machine, percentile, startHead } from './lib.mjs';

const rounds = Number(process.argv[2] ?? 7);
const WARM_PER_ROUND = 3;

// A pure-Python wheel written here, so the first scenario needs no index at all.
const WHEEL = `
import sys, zipfile
out = sys.argv[1]
info = "raysub_bench_tiny-1.0.dist-info"
with zipfile.ZipFile(f"{out}/raysub_bench_tiny-1.0-py3-none-any.whl", "w") as z:
    z.writestr("raysub_bench_tiny/__init__.py", "VALUE = 1\\n")
    z.writestr(f"{info}/METADATA", "Metadata-Version: 2.1\\nName: raysub-bench-tiny\\nVersion: 1.0\\n")
    z.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\\nGenerator: raysub-bench\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n")
    z.writestr(f"{info}/RECORD", "")
`;
const wheelDir = fs.mkdtempSync(path.join(os.tmpdir(), 'raysub-bench-wheels-'));
spawnSync('python3', ['-c', WHEEL, wheelDir], { stdio: 'inherit' });

// Installers fall through an unreachable public index at once instead of retrying for minutes.
const FAST_PIP = { PIP_RETRIES: '0', PIP_DEFAULT_TIMEOUT: '5' };

function available(pkg) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'raysub-bench-probe-'));
  const r = spawnSync('python3', ['-m', 'pip', 'download', '--no-deps', '-d', dir, pkg], { env: { ...process.env, ...FAST_PIP }, stdio: 'ignore' });
  fs.rmSync(dir, { recursive: true, force: true });
  return r.status === 0;
}

const scenarios = [
  {
    name: 'tiny wheel (offline, agent pip config: --find-links, no index)',
    env: { ...FAST_PIP, PIP_CONFIG_FILE: os.devnull, PIP_NO_INDEX: '1', PIP_FIND_LINKS: wheelDir },
    pip: ['raysub-bench-tiny==1.0'],
    entrypoint: 'python3 -c "import raysub_bench_tiny"',
  },
  {
    name: "scikit-learn (this machine's pip configuration)",
    env: FAST_PIP,
    pip: ['scikit-learn'],
    entrypoint: 'python3 -c "import sklearn"',
    skip: available('scikit-learn') ? null : "this machine's pip configuration cannot provide scikit-learn",
  },
];

async function timeJob(client, req) {
  const t0 = process.hrtime.bigint();
  const { submission_id: id } = await client.submitJob(req);
  const job = await client.waitForJob(id, { timeoutMs: 900_000 });
  const total = Number(process.hrtime.bigint() - t0) / 1e6;
  if (job.status !== 'SUCCEEDED') throw new Error(`job ${id} ended ${job.status}: ${job.message}`);
  const logs = await client.getLogs(id);
  return { start: job.raysub.started_at - job.raysub.created_at, total, logs };
}

const stat = (v) => `${percentile(v, 50).toFixed(0)} / ${percentile(v, 90).toFixed(0)}`;
console.log(`machine: ${machine()}`);
console.log(`rounds: ${rounds} (each: 1 cold, ${WARM_PER_ROUND} warm, 1 without runtime_env), fresh head per round`);
console.log('');
console.log('| package | runs | start ms, median / p90 | submit → SUCCEEDED ms, median / p90 |');
console.log('|---|---|---|---|');
for (const s of scenarios) {
  if (s.skip) {
    console.log(`| ${s.name} | skipped: ${s.skip} | | |`);
    continue;
  }
  const cold = [];
  const warm = [];
  const none = [];
  for (let r = 0; r < rounds; r++) {
    const head = await startHead(['--num-cpus', '2'], s.env);
    const client = new RaysubClient({ address: head.url, token: head.token, retries: 0 });
    try {
      const req = (id) => ({ entrypoint: s.entrypoint, submission_id: id, runtime_env: { pip: s.pip } });
      const c = await timeJob(client, req(`cold-${r}`));
      if (!c.logs.includes('pip: building env')) throw new Error('the cold run did not build an env');
      cold.push(c);
      for (let w = 0; w < WARM_PER_ROUND; w++) {
        const h = await timeJob(client, req(`warm-${r}-${w}`));
        if (!h.logs.includes('reusing the cached env')) throw new Error('a warm run did not reuse the env');
        warm.push(h);
      }
      none.push(await timeJob(client, { entrypoint: 'python3 -c pass', submission_id: `none-${r}` }));
    } finally {
      await client.close();
      await head.stop();
    }
  }
  const row = (label, v) => console.log(`| ${s.name}: ${label} | ${v.length} | ${stat(v.map((x) => x.start))} | ${stat(v.map((x) => x.total))} |`);
  row('cold (env built)', cold);
  row('warm (env reused)', warm);
  row('no runtime_env (reference)', none);
}
fs.rmSync(wheelDir, { recursive: true, force: true });
