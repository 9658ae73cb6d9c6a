// Start-up cost the sandbox adds per task: the agent's own launchers, launch() to exited, for the
// same command, interleaved so both see the same machine load.
//   bare:      ProcessLauncher (a process group, nothing else) — the floor
//   sandboxed: the launcher the agent picks here (bwrap + cgroups + per-task uid), including
//              cgroup creation and removal, the task dir chown and the per-task files; a task
//              without a job, so each gets a new sandbox
//   reused:    the same launcher, tasks of one job: each after the first runs in the sandbox the
//              one before it left (emptied between them)
// Usage: node scripts/bench-sandbox.mjs [--runs N] [--gap-ms MS] [--json]
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { machine, percentile, root } from './lib.mjs';

const { ProcessLauncher } = await import(path.join(root, 'dist/agent/launcher.js'));
const { chooseLauncher } = await import(path.join(root, 'dist/agent/sandbox/index.js'));
const { silentLogger } = await import(path.join(root, 'dist/shared/log.js'));

const args = process.argv.slice(2);
const runs = Number(args[args.indexOf('--runs') + 1]) || 41;
// Idle time before each task, as between tasks an agent receives; 0 starts them back to back.
const gapMs = args.includes('--gap-ms') ? Number(args[args.indexOf('--gap-ms') + 1]) : 50;
const json = args.includes('--json');
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'raysub-bench-sandbox-'));

const sandboxed = await chooseLauncher(
  {
    sandbox: 'auto',
    workDir: path.join(work, 'agent'),
    hiddenPaths: [],
    nodeName: 'bench',
    sandboxInterpreters: ['python3', 'node'],
    sandboxBinds: [],
    taskPidsMax: 4096,
    taskOpenFiles: 4096,
  },
  silentLogger(),
);
const bare = new ProcessLauncher();
const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', LANG: 'C.UTF-8' };

let n = 0;
/** One task: a fresh task dir (a few files, as a small working dir), launch, wait for the exit. */
async function once(launcher, argv, group = undefined) {
  // A job's task directories lie in the job's directory under the agent's tasks dir, as the workspace makes them.
  const cwd = group ? path.join(work, 'agent', 'tasks', group, `${group}.${n++}`) : path.join(work, 'tasks', `t${n++}`);
  fs.mkdirSync(cwd, { recursive: true });
  for (const f of ['main.py', 'data.txt', 'README.md']) fs.writeFileSync(path.join(cwd, f), 'x\n');
  if (gapMs > 0) await new Promise((r) => setTimeout(r, gapMs));
  const started = process.hrtime.bigint();
  const w = await launcher.launch({
    key: `bench.${n}`,
    group,
    argv,
    cwd,
    env,
    resources: { cpus: 1, gpus: 0, memory: 512 * 2 ** 20, custom: {} },
    gpuIds: [],
    network: 'host',
    readOnlyPaths: [],
  });
  w.stdout.resume();
  w.stderr.resume();
  const exit = await w.exited;
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  fs.rmSync(cwd, { recursive: true, force: true });
  if (exit.code !== 0) throw new Error(`${argv.join(' ')} exited with ${exit.code ?? exit.signal} under ${launcher.mode}`);
  return ms;
}

// The real interpreters, not a version manager's shim on PATH: the sandbox runs the real one (its
// links point there), so a shim in the bare run would make the sandbox look faster than it is.
const real = (cmd, args) => execFileSync(cmd, args, { encoding: 'utf8' }).trim();
const python = real('python3', ['-c', 'import sys; print(sys.executable)']);
const commands = [
  { name: '`/bin/sh -c true`', argv: ['/bin/sh', '-c', 'true'], runs },
  { name: '`python3 -c pass`', argv: ['/bin/sh', '-c', `${python} -c pass`], runs: Math.ceil(runs / 2) },
  { name: '`node -e 0`', argv: ['/bin/sh', '-c', `${process.execPath} -e 0`], runs: Math.ceil(runs / 2) },
];
const loadBefore = os.loadavg().map((l) => l.toFixed(2)).join(' ');
const rows = [];
for (const c of commands) {
  for (let i = 0; i < 5; i++) await once(bare, c.argv), await once(sandboxed, c.argv), await once(sandboxed, c.argv, 'job'); // warm-up
  const b = [];
  const s = [];
  const u = [];
  for (let i = 0; i < c.runs; i++) {
    // Rotate which goes first so none always runs right after another's exit.
    const order = [() => once(bare, c.argv).then((x) => b.push(x)), () => once(sandboxed, c.argv).then((x) => s.push(x)), () => once(sandboxed, c.argv, 'job').then((x) => u.push(x))];
    for (let k = 0; k < 3; k++) await order[(i + k) % 3]();
  }
  // Each sandboxed run next to the bare run beside it: the machine's load changes by the second.
  const paired = s.map((x, i) => x - (b[i] ?? 0));
  rows.push({
    command: c.name,
    runs: c.runs,
    bare_median_ms: percentile(b, 50),
    sandboxed_median_ms: percentile(s, 50),
    added_median_ms: percentile(s, 50) - percentile(b, 50),
    added_paired_median_ms: percentile(paired, 50),
    reused_median_ms: percentile(u, 50),
    reused_added_median_ms: percentile(u, 50) - percentile(b, 50),
    bare_p90_ms: percentile(b, 90),
    sandboxed_p90_ms: percentile(s, 90),
    reused_p90_ms: percentile(u, 90),
  });
}
await sandboxed.close?.();
fs.rmSync(work, { recursive: true, force: true });

const result = { gap_ms: gapMs, machine: machine(), date: new Date().toISOString().slice(0, 10), load_before: loadBefore, load_after: os.loadavg().map((l) => l.toFixed(2)).join(' '), sandbox: { mode: sandboxed.mode, detail: sandboxed.detail }, rows };
if (json) {
  process.stdout.write(JSON.stringify(result, null, 2) + '\n');
} else {
  const f = (x) => x.toFixed(1);
  console.log(`${result.machine}; load average before ${result.load_before}, after ${result.load_after}`);
  console.log(`sandbox: ${sandboxed.mode} (${sandboxed.detail})`);
  console.log(`${gapMs} ms idle before each task\n`);
  console.log('| command | runs | bare median ms | new sandbox median ms | added (difference of medians) | added (median of paired differences) | reused sandbox median ms | added | bare p90 | new sandbox p90 | reused p90 |');
  console.log('|---|---|---|---|---|---|---|---|---|---|---|');
  for (const r of rows) {
    console.log(`| ${r.command} | ${r.runs} | ${f(r.bare_median_ms)} | ${f(r.sandboxed_median_ms)} | **${f(r.added_median_ms)}** | ${f(r.added_paired_median_ms)} | ${f(r.reused_median_ms)} | **${f(r.reused_added_median_ms)}** | ${f(r.bare_p90_ms)} | ${f(r.sandboxed_p90_ms)} | ${f(r.reused_p90_ms)} |`);
  }
}
