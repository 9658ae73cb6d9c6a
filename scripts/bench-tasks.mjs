// In-job task throughput: 5,000 trivial tasks submitted asynchronously then gathered with one get,
// and 500 submitted one at a time with a get after each, on raysub (a head with its embedded
// agent, the job's driver holding no CPU) and, where Ray can be installed from this machine's pip
// configuration, on Ray (ray.init with the same number of CPUs), in the same run.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { cli, machine, root, startHead } from './lib.mjs';

const cpus = Number(process.env.BENCH_CPUS ?? os.availableParallelism());
const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
const VENV = path.join(os.tmpdir(), 'raysub-test-ray-venv');

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
  const head = await startHead(['--num-cpus', String(cpus)]);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'raysub-bench-tasks-'));
  fs.copyFileSync(path.join(root, 'scripts', 'bench_tasks.py'), path.join(dir, 'bench_tasks.py'));
  const env = { ...process.env, RAYSUB_ADDRESS: head.url, RAYSUB_TOKEN: head.token, NO_COLOR: '1' };
  const results = [];
  try {
    for (let i = 0; i < rounds; i++) {
      const r = spawnSync(process.execPath, [cli, 'job', 'submit', '-q', '--working-dir', dir, '--entrypoint-num-cpus', '0', '--', 'python3', 'bench_tasks.py', 'raysub'], { env, encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`raysub job failed (${r.status}): ${r.stdout}${r.stderr}`);
      results.push(parse(r.stdout));
    }
  } finally {
    await head.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return results;
}

function rayPython() {
  const python = path.join(VENV, 'bin', 'python');
  const ok = () => spawnSync(python, ['-c', 'import ray'], { stdio: 'ignore' }).status === 0;
  if (fs.existsSync(python) && ok()) return { python };
  try {
    execFileSync('python3', ['-m', 'venv', VENV], { stdio: 'ignore' });
    const pip = spawnSync(path.join(VENV, 'bin', 'pip'), ['install', '--retries', '0', '--timeout', '20', 'ray'], { encoding: 'utf8', timeout: 900_000 });
    if (pip.status !== 0) return { skip: `pip could not install ray: ${(pip.stderr || pip.stdout).trim().split('\n').slice(-1)[0]}` };
    return ok() ? { python } : { skip: 'ray installed but cannot be imported' };
  } catch (err) {
    return { skip: `cannot create a virtualenv: ${err.message}` };
  }
}

function rayRounds(python) {
  const results = [];
  for (let i = 0; i < rounds; i++) {
    const r = spawnSync(python, [path.join(root, 'scripts', 'bench_tasks.py'), 'ray', String(cpus)], { encoding: 'utf8', env: { ...process.env, RAY_USAGE_STATS_ENABLED: '0' }, timeout: 600_000 });
    if (r.status !== 0) throw new Error(`ray run failed (${r.status}): ${r.stderr.slice(-3000)}`);
    results.push(parse(r.stdout));
  }
  return results;
}

const summary = (rs) => ({
  async: median(rs.map((r) => r.async_per_s)),
  sync: median(rs.map((r) => r.sync_per_s)),
  runs: rs.map((r) => `${r.async_per_s.toFixed(0)}/${r.sync_per_s.toFixed(0)}`).join(', '),
});

console.log(`machine: ${machine()}; ${cpus} CPUs for tasks; ${rounds} rounds each (median shown)`);
const rs = summary(await raysubRounds());
const ray = rayPython();
const ry = ray.python ? summary(rayRounds(ray.python)) : null;
console.log('\n| system | 5,000 async tasks/s | 500 sync tasks/s | each round (async/sync) |');
console.log('|---|---|---|---|');
console.log(`| raysub | ${rs.async.toFixed(0)} | ${rs.sync.toFixed(0)} | ${rs.runs} |`);
if (ry) console.log(`| Ray ${execFileSync(ray.python, ['-c', 'import ray; print(ray.__version__)'], { encoding: 'utf8' }).trim()} | ${ry.async.toFixed(0)} | ${ry.sync.toFixed(0)} | ${ry.runs} |`);
else console.log(`\nRay: skipped (${ray.skip})`);
if (ry) console.log(`\nraysub / Ray: async ${(rs.async / ry.async).toFixed(2)}×, sync ${(rs.sync / ry.sync).toFixed(2)}×`);
