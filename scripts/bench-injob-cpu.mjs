// CPU time per in-job task, counted rather than timed: a head with its embedded agent (`--num-cpus
// 2 --sandbox none`) runs one job (scripts/injob_cpu.py) that warms up, then runs BENCH_ROUNDS
// rounds of N tiny tasks; around each round the head process's utime+stime (/proc/<pid>/stat: the
// agent's and the head's work for those tasks) and its descendants' (driver and workers) are read.
// The head's idle CPU rate, read for 4 s before the first round, is taken off its figure. The
// first round (still warming up) is left out of the summary: min and median of the others.
//
//   node scripts/bench-injob-cpu.mjs tiny 3000     # or: sync 1000
//   BENCH_ROOT=<another built checkout>            # measure that checkout's head and libraries
//   BENCH_ROUNDS=5
//   BENCH_CPU_PROFILE=<dir>                        # also write the head's V8 CPU profile there
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { root as here } from './lib.mjs';

const [mode = 'tiny', nArg = '3000'] = process.argv.slice(2);
if (mode !== 'tiny' && mode !== 'sync') throw new Error('mode is tiny or sync');
const n = Number(nArg);
const rounds = Number(process.env.BENCH_ROUNDS ?? 5);
const root = path.resolve(process.env.BENCH_ROOT ?? here);
const cli = path.join(root, 'bin', 'raysub');
const hz = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;
const tmp = (p) => fs.mkdtempSync(path.join(os.tmpdir(), p));
const dataDir = tmp('raysub-bench-cpu-');
const signals = tmp('raysub-bench-cpu-sig-');
const workDir = tmp('raysub-bench-cpu-wd-');
fs.copyFileSync(path.join(here, 'scripts', 'injob_cpu.py'), path.join(workDir, 'injob_cpu.py'));
const prof = process.env.BENCH_CPU_PROFILE ? ['--cpu-prof', '--cpu-prof-dir', path.resolve(process.env.BENCH_CPU_PROFILE)] : [];
const head = spawn(process.execPath, [...prof, cli, 'start', '--head', '--port', '0', '--data-dir', dataDir, '--log-level', 'warn', '--num-cpus', '2', '--sandbox', 'none'], { stdio: ['ignore', 'ignore', 'inherit'] });

/** utime+stime (ticks) and parent of a process, or null once it is gone. */
function stat(pid) {
  try {
    const t = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = t.slice(t.lastIndexOf(')') + 2).split(' ');
    return { ppid: Number(f[1]), cpu: Number(f[11]) + Number(f[12]) };
  } catch {
    return null;
  }
}

/** CPU ticks of every process below the head, by pid. */
function descendants() {
  const all = new Map();
  for (const d of fs.readdirSync('/proc')) if (/^\d+$/.test(d)) all.set(Number(d), stat(d));
  const below = (p) => {
    for (let i = 0; i < 32 && p > 1; i++, p = all.get(p)?.ppid ?? 0) if (p === head.pid) return true;
    return false;
  };
  const out = new Map();
  for (const [pid, s] of all) if (s && pid !== head.pid && below(s.ppid)) out.set(pid, s.cpu);
  return out;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let job = null;
let out = '';
async function waitFile(name) {
  for (const deadline = Date.now() + 600_000; Date.now() < deadline; await sleep(20)) {
    if (fs.existsSync(path.join(signals, name))) return;
    if (job && job.exitCode !== null) throw new Error(`the job ended: ${out.slice(-3000)}`);
  }
  throw new Error(`no ${name} within 10 minutes`);
}

try {
  let info = null;
  for (const deadline = Date.now() + 60_000; Date.now() < deadline && info?.pid !== head.pid; await sleep(50)) {
    try {
      info = JSON.parse(fs.readFileSync(path.join(dataDir, 'head.json'), 'utf8'));
    } catch {
      // not yet
    }
  }
  const token = fs.readFileSync(path.join(dataDir, 'token'), 'utf8').trim();
  const env = { ...process.env, RAYSUB_ADDRESS: info.url, RAYSUB_TOKEN: token, NO_COLOR: '1' };
  job = spawn(process.execPath, [cli, 'job', 'submit', '-q', '--working-dir', workDir, '--entrypoint-num-cpus', '0', '--', 'python3', 'injob_cpu.py', signals, String(n), mode, String(rounds)], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  job.stdout.on('data', (d) => (out += d));
  job.stderr.on('data', (d) => (out += d));
  await waitFile('ready0');
  const idle0 = [stat(head.pid).cpu, Date.now()];
  await sleep(4000);
  const idlePerMs = (stat(head.pid).cpu - idle0[0]) / (Date.now() - idle0[1]);
  const res = [];
  for (let r = 0; r < rounds; r++) {
    await waitFile(`ready${r}`);
    const k0 = descendants();
    const a0 = stat(head.pid).cpu;
    const t0 = Date.now();
    fs.writeFileSync(path.join(signals, `go${r}`), '');
    await waitFile(`done${r}`);
    const a1 = stat(head.pid).cpu;
    const ms = Date.now() - t0;
    let kids = 0;
    for (const [pid, cpu] of descendants()) kids += cpu - (k0.get(pid) ?? 0);
    const us = (ticks) => ((ticks / hz) * 1e6) / n;
    res.push({ agent: us(a1 - a0 - idlePerMs * ms), children: us(kids), rate: n / (ms / 1000) });
  }
  fs.writeFileSync(path.join(signals, 'exit'), '');
  const rest = res.slice(1);
  const pick = (k) => {
    const s = rest.map((x) => x[k]).sort((a, b) => a - b);
    return { min: Math.round(s[0]), median: Math.round(s[Math.floor((s.length - 1) / 2)]) };
  };
  console.log(JSON.stringify({ checkout: root, mode, tasks: n, rounds, load: os.loadavg().map((x) => x.toFixed(1)).join(' '), agentUsPerTask: pick('agent'), childrenUsPerTask: pick('children'), tasksPerSecond: pick('rate'), eachRound: res.map((x) => [Math.round(x.agent), Math.round(x.children), Math.round(x.rate)]) }));
} finally {
  if (job && job.exitCode === null) job.kill('SIGTERM');
  head.kill('SIGTERM');
  await new Promise((r) => (head.exitCode !== null ? r() : head.once('exit', r)));
  for (const d of [dataDir, signals, workDir]) fs.rmSync(d, { recursive: true, force: true });
}
