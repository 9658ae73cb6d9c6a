// In-job tasks, actors and objects, raysub next to Ray in the same run: the workloads of
// scripts/bench_tasks.py (the same code for both; `import ray` is raysub's library in a raysub job),
// each warmed up and then timed once per round. raysub runs each round as a job on a head with its
// embedded agent (the driver holding no CPU); Ray, where it can be installed from this machine's pip
// configuration, runs the script with ray.init(num_cpus=<the same CPUs>), a new process per round.
//
//   BENCH_ROUNDS=3              rounds per system (median shown)
//   BENCH_WORKLOADS=nested,...  which workloads (default: all; names in ROWS below)
//   BENCH_SYSTEMS=raysub,ray    which systems
//   BENCH_CPUS=2                CPUs for tasks (default: this machine's)
//   BENCH_HEAD_ARGS='--sandbox none'  more flags for raysub's head (e.g. to see what the sandbox costs)
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { cli, machine, root, startHead } from './lib.mjs';

// name: [what it is, its count (for a rate), the rate's unit]
const ROWS = {
  tiny: ['5,000 tiny tasks, submitted at once, one get', 5000, 'tasks/s'],
  sync: ['500 tiny tasks one at a time (submit, get)', 500, 'tasks/s'],
  actor_async: ['2,000 calls on one actor, one get', 2000, 'calls/s'],
  actor_sync: ['500 calls on one actor one at a time', 500, 'calls/s'],
  nested: ['nested fib(10): 177 tasks, each waiting on its children', 177, 'tasks/s'],
  results_1mib: ['1,000 tasks returning 1 MiB each, one get', 1000, 'MiB/s'],
  put_80mb: ['80 MB numpy array put, read by 3 tasks', 80, 'MB/s'],
  return_40mb: ['40 MB numpy array returned, read by the driver', 40, 'MB/s'],
};

const cpus = Number(process.env.BENCH_CPUS ?? os.availableParallelism());
const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
const workloads = (process.env.BENCH_WORKLOADS ?? Object.keys(ROWS).join(',')).split(',').filter(Boolean);
const systems = (process.env.BENCH_SYSTEMS ?? 'raysub,ray').split(',');
const unknown = workloads.filter((w) => !(w in ROWS));
if (unknown.length) throw new Error(`unknown workload(s) ${unknown.join(', ')}; known: ${Object.keys(ROWS).join(', ')}`);
const VENV = path.join(os.tmpdir(), 'raysub-test-ray-venv');
const SCRIPT = path.join(root, 'scripts', 'bench_tasks.py');

function parse(out) {
  const line = out.split('\n').find((l) => l.includes('BENCH {'));
  if (!line) throw new Error(`no result in the output:\n${out.slice(-3000)}`);
  return JSON.parse(line.slice(line.indexOf('{')));
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

async function raysubRounds() {
  const head = await startHead(['--num-cpus', String(cpus), ...(process.env.BENCH_HEAD_ARGS ?? '').split(' ').filter(Boolean)]);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'raysub-bench-tasks-'));
  fs.copyFileSync(SCRIPT, path.join(dir, 'bench_tasks.py'));
  const env = { ...process.env, RAYSUB_ADDRESS: head.url, RAYSUB_TOKEN: head.token, NO_COLOR: '1' };
  const results = [];
  try {
    for (let i = 0; i < rounds; i++) {
      const r = spawnSync(process.execPath, [cli, 'job', 'submit', '-q', '--working-dir', dir, '--entrypoint-num-cpus', '0', '--', 'python3', 'bench_tasks.py', 'raysub', workloads.join(',')], { env, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
      if (r.status !== 0) throw new Error(`raysub job failed (${r.status}): ${r.stdout.slice(-3000)}${r.stderr.slice(-3000)}`);
      results.push(parse(r.stdout));
    }
  } finally {
    await head.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return results;
}

/** Ray's interpreter (installing Ray, and numpy for the numpy rows, into the venv when missing), or why not. */
function rayPython() {
  const python = path.join(VENV, 'bin', 'python');
  const pip = (pkg) => spawnSync(path.join(VENV, 'bin', 'pip'), ['install', '--retries', '0', '--timeout', '20', pkg], { encoding: 'utf8', timeout: 900_000 });
  const can = (mod) => spawnSync(python, ['-c', `import ${mod}`], { stdio: 'ignore' }).status === 0;
  try {
    if (!fs.existsSync(python)) execFileSync('python3', ['-m', 'venv', VENV], { stdio: 'ignore' });
  } catch (err) {
    return { skip: `cannot create a virtualenv: ${err.message}` };
  }
  if (!can('ray')) {
    const r = pip('ray');
    if (r.status !== 0) return { skip: `pip could not install ray: ${(r.stderr || r.stdout).trim().split('\n').slice(-1)[0]}` };
    if (!can('ray')) return { skip: 'ray installed but cannot be imported' };
  }
  // The numpy rows need numpy beside Ray; without it the script skips them, saying why.
  if (!can('numpy')) pip('numpy');
  return { python };
}

function rayRounds(python) {
  const results = [];
  for (let i = 0; i < rounds; i++) {
    const r = spawnSync(python, [SCRIPT, 'ray', String(cpus), workloads.join(',')], { encoding: 'utf8', env: { ...process.env, RAY_USAGE_STATS_ENABLED: '0' }, timeout: 900_000, maxBuffer: 64 * 1024 * 1024 });
    if (r.status !== 0) throw new Error(`ray run failed (${r.status}): ${r.stderr.slice(-3000)}`);
    results.push(parse(r.stdout));
  }
  return results;
}

/** Per workload: the median seconds and every round's, or why it was skipped. */
function summary(results) {
  const out = {};
  for (const w of workloads) {
    const secs = results.map((r) => r.seconds[w]).filter((s) => typeof s === 'number');
    const skipped = results.map((r) => r.skipped[w]).find(Boolean);
    out[w] = secs.length ? { median: median(secs), all: secs } : { skipped: skipped ?? 'not run' };
  }
  return out;
}

const fmt = (n) => (n >= 100 ? Math.round(n).toLocaleString('en-US') : n >= 10 ? n.toFixed(1) : n.toFixed(2));
const cell = (w, s) => {
  if (!s) return '—';
  if (s.skipped) return `skipped (${s.skipped})`;
  const [, count, unit] = ROWS[w];
  return `${(s.median * 1000).toFixed(0)} ms (${fmt(count / s.median)} ${unit})`;
};

console.log(`machine: ${machine()}; ${cpus} CPUs for tasks; ${rounds} rounds each (median shown); load average ${os.loadavg().map((x) => x.toFixed(1)).join(' ')} at the start`);
const rs = systems.includes('raysub') ? summary(await raysubRounds()) : null;
const ray = systems.includes('ray') ? rayPython() : { skip: 'not asked for (BENCH_SYSTEMS)' };
const ry = ray.python ? summary(rayRounds(ray.python)) : null;
const rayName = ray.python ? `Ray ${execFileSync(ray.python, ['-c', 'import ray; print(ray.__version__)'], { encoding: 'utf8' }).trim()}` : 'Ray';

console.log(`\n| workload | raysub | ${rayName} | raysub ÷ Ray |`);
console.log('|---|---|---|---|');
for (const w of workloads) {
  const a = rs?.[w];
  const b = ry?.[w];
  const ratio = a?.median && b?.median ? `**${(b.median / a.median).toFixed(2)}×**` : '—';
  console.log(`| ${ROWS[w][0]} | ${cell(w, a)} | ${cell(w, b)} | ${ratio} |`);
}
console.log('\neach round, seconds:');
for (const w of workloads) {
  const each = (s) => (s?.all ? s.all.map((x) => x.toFixed(3)).join(', ') : '—');
  console.log(`  ${w}: raysub ${each(rs?.[w])}; Ray ${each(ry?.[w])}`);
}
if (!ry) console.log(`\nRay: skipped (${ray.skip})`);
console.log(`\nload average ${os.loadavg().map((x) => x.toFixed(1)).join(' ')} at the end`);
