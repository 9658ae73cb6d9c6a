/**
 * The terminal experience beyond the dashboard: task prefixes and red stderr (on stdout) when following an
 * array job, the upload progress bar, NO_COLOR, shell completion, and a `--help` that loads
 * neither ink nor react.
 */
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cliPath, repoRoot, runCli, startHead, tempDir, waitFor, workingDir } from './helpers/cluster.js';
import { startProxy } from './helpers/netProxy.js';
import { ptyAvailable, runCliInPty } from './helpers/pty.js';
import { renderScreen } from './helpers/screen.js';

const ESC = '\u001b';
const hasPty = await ptyAvailable();
if (!hasPty) console.warn('status-terminal.test.ts: skipping the pseudo-terminal tests: python3 with its pty module is not available');
const hasZsh = spawnSync('zsh', ['-c', 'true']).status === 0;
if (!hasZsh) console.warn('status-terminal.test.ts: skipping the zsh completion test: zsh is not installed');

// stderr kept a stream of its own, so the CLI can colour it (docs/logs.md).
const ARRAY_JOB = ['--parallel', '2', '--runtime-env-json', '{"sandbox": {"separate_stderr": true}}', '--', 'sh', '-c', 'echo "out $RAYSUB_TASK_INDEX"; echo "err $RAYSUB_TASK_INDEX" >&2'];

describe('terminal output', () => {
  it.skipIf(!hasPty)('follows an array job with task prefixes and red stderr on a terminal, plain elsewhere', async () => {
    const head = await startHead({ numCpus: 2 });
    expect((await runCli(['job', 'submit', '--no-wait', '--submission-id', 'arr', ...ARRAY_JOB], { env: head.env })).code).toBe(0);
    const conn = ['--address', head.url, '--token-file', path.join(head.dataDir, 'token')];

    const term = runCliInPty(['job', 'logs', 'arr', '--follow', ...conn]);
    expect(await term.exited).toBe(0);
    const out = term.output();
    for (const i of [0, 1]) {
      expect(out).toContain(`${ESC}[36m[task ${i}]${ESC}[39m out ${i}\r\n`);
      expect(out).toContain(`${ESC}[36m[task ${i}]${ESC}[39m ${ESC}[31merr ${i}${ESC}[39m\r\n`);
    }

    const noColor = runCliInPty(['job', 'logs', 'arr', '--follow', ...conn], { env: { NO_COLOR: '1' } });
    expect(await noColor.exited).toBe(0);
    expect(noColor.output()).not.toContain(ESC);
    expect(noColor.output()).toContain('[task 1] err 1\r\n');

    const piped = await runCli(['job', 'logs', 'arr', '--follow'], { env: { ...head.env, NO_COLOR: '' } });
    expect(piped.code).toBe(0);
    // One stream on stdout (docs/logs.md): stderr too, marked only by colour on a terminal.
    expect(piped.stdout.split('\n').sort()).toEqual(['', '[task 0] err 0', '[task 0] out 0', '[task 1] err 1', '[task 1] out 1']);
    expect(piped.stderr).not.toContain('err 0');
    expect(piped.stdout + piped.stderr).not.toContain(ESC);
  });

  it.skipIf(!hasPty)('shows an upload progress bar with bytes and rate on a terminal, and none in a pipe', async () => {
    const head = await startHead({ numCpus: 1 });
    // Incompressible, and slowed to about 8 MiB/s on the way, so the upload takes a few seconds.
    const dir = workingDir({ 'main.py': 'print("uploaded")\n' });
    fs.writeFileSync(path.join(dir, 'weights.bin'), crypto.randomBytes(24 * 1024 * 1024));
    const slow = await startProxy({ target: () => new URL(head.url), bytesPerSecond: 8 * 1024 * 1024 });
    const term = runCliInPty(['job', 'submit', '--working-dir', dir, '--address', slow.url, '--token-file', path.join(head.dataDir, 'token'), '--', 'python3', 'main.py']);
    expect(await term.exited).toBe(0);
    const out = term.output();
    expect(out).toMatch(/\rUploading \[#*\.*\] \d+\.\d MiB \/ 24\.0 MiB {2}\d+\.\d MiB\/s/);
    const frames = out.match(/\rUploading \[[#.]+\]/g) ?? [];
    expect(frames.length).toBeGreaterThan(3); // it moves
    expect(out).toContain('Uploading [########################] 24.0 MiB / 24.0 MiB');
    expect(out).toContain('uploaded\r\n');

    fs.writeFileSync(path.join(dir, 'weights.bin'), crypto.randomBytes(4 * 1024 * 1024)); // a new package
    const piped = await runCli(['job', 'submit', '--working-dir', dir, '--', 'python3', 'main.py'], { env: { ...head.env, RAYSUB_ADDRESS: slow.url } });
    expect(piped.code).toBe(0);
    expect(piped.stderr).not.toContain('Uploading');
    expect(piped.stderr).toMatch(/Uploaded working dir: 2 files/);
  });
});

describe('job list', () => {
  it.skipIf(!hasPty)('is a table that fits the terminal, coloured there, plain in a pipe', async () => {
    const head = await startHead({ numCpus: 1 });
    const long = 'a-very-long-argument-'.repeat(6);
    expect((await runCli(['job', 'submit', '--submission-id', 'wordy', '--', 'sh', '-c', `echo ${long}; exit 9`], { env: head.env })).code).toBe(9);
    expect((await runCli(['job', 'submit', '--submission-id', 'fine', '--', 'true'], { env: head.env })).code).toBe(0);
    const term = runCliInPty(['job', 'list', '--address', head.url, '--token-file', path.join(head.dataDir, 'token')], { cols: 110 });
    expect(await term.exited).toBe(0);
    const lines = term.output().replace(/\u001b\[[0-9;]*m/g, '').split('\r\n').filter(Boolean);
    expect(lines[0]).toMatch(/^ID +STATUS +SUBMITTED +DURATION +TASKS +CPU-S +PEAK-MEM +ENTRYPOINT +DETAIL$/);
    // CPU-seconds and peak memory: figures where the node counts them, n/a where it cannot, - before an attempt ended.
    const usage = String.raw`(?:[\d.]+|n/a|-) +(?:[\d.]+ ?[KMGT]?i?B|n/a|-)`;
    expect(lines[1]).toMatch(new RegExp(String.raw`^fine +SUCCEEDED +\d+s ago +\d+s +1 +${usage} +true$`));
    expect(lines[2]).toMatch(new RegExp(String.raw`^wordy +FAILED +\d+s ago +\d+s +1 +${usage} +sh -c .*… +ENTRYPOINT_FAILED.*…$`));
    for (const l of lines) expect(l.length).toBeLessThanOrEqual(110);
    expect(term.output()).toContain(`${ESC}[31mFAILED${ESC}[39m`);
    const piped = await runCli(['job', 'list'], { env: { ...head.env, NO_COLOR: '' } });
    expect(piped.stdout).not.toContain(ESC);
    expect(piped.stdout).toMatch(/\nwordy +FAILED .*ENTRYPOINT_FAILED job failed: exited with code 9; last output:\n/);
  });
});

describe('status --watch on an 80x24 terminal', () => {
  it.skipIf(!hasPty)('fits: arrays as "3/10 running, 7 queued", failures by end time, recent successes, sections collapsed to fit', async () => {
    const head = await startHead({ numCpus: 3, args: ['--node-name', 'node-1'] });
    const c = head.client;
    // Two failures that end in the other order than they were submitted; two successes.
    await c.submitJob({ entrypoint: 'sleep 2; exit 4', submission_id: 'fails-late', entrypoint_num_cpus: 0 });
    await c.submitJob({ entrypoint: 'exit 5', submission_id: 'fails-early', entrypoint_num_cpus: 0 });
    for (const id of ['ok-1', 'ok-2']) await c.submitJob({ entrypoint: 'true', submission_id: id, entrypoint_num_cpus: 0 });
    await waitFor(async () => (await c.getJob('fails-late')).status === 'FAILED' && (await c.getJob('ok-2')).status === 'SUCCEEDED', { what: 'the short jobs to end' });
    // An array of 10 on 3 CPUs, six jobs queued behind it, two schedules: more than 24 lines hold.
    await c.submitJob({ entrypoint: 'sleep 120', submission_id: 'sweep', entrypoint_num_cpus: 1, raysub: { parallel: 10 } });
    for (let i = 0; i < 6; i++) await c.submitJob({ entrypoint: 'sleep 120', submission_id: `waits-${i}`, entrypoint_num_cpus: 1 });
    await c.createSchedule({ name: 'hourly', cron: '0 * * * *', job: { entrypoint: 'true' } });
    await c.createSchedule({ name: 'nightly', cron: '@daily', job: { entrypoint: 'true' } });
    await waitFor(async () => (await c.getJob('sweep')).raysub.task_counts.RUNNING === 3, { what: 'three tasks of the array to run' });

    const term = runCliInPty(['status', '--watch', '--interval', '0.5', '--address', head.url, '--token-file', path.join(head.dataDir, 'token')], { cols: 80, rows: 24, env: { NO_COLOR: '1' } });
    const screen = await waitFor(() => {
      const s = renderScreen(term.output(), 80, 24);
      return s.includes('3/10 running, 7 queued') && s.includes('Recent failures') ? s : null;
    }, { what: 'the dashboard to draw' });
    const lines = screen.split('\n');
    expect(lines.length).toBeLessThanOrEqual(24);
    for (const l of lines) expect(l.length, l).toBeLessThan(80);
    expect(screen).toMatch(/^raysub status /m);
    expect(screen).toMatch(/Running \(1\)\s*\nJOB .*\nsweep +\S+ +3\/10 running, 7 queued/);
    // Pending gets what room is left, and says how many it leaves out.
    expect(screen).toMatch(/Pending \(6\)\s*\nJOB .*\nwaits-0 [\s\S]*… and \d+ more/);
    // Failures by end time, newest first: the one submitted first ended last.
    expect(screen).toMatch(/Recent failures\s*\nJOB .*\nfails-late .*\nfails-early /);
    // What did not fit is one line, with its count.
    expect(screen).toMatch(/Recent successes: 2 \(no room\) · Schedules due next: 2 \(no room\)/);
    term.type('q');
    expect(await term.exited).toBe(0);
    // Without a terminal, all of it: successes too, newest end first.
    const plain = await runCli(['status'], { env: head.env });
    // ok-1 and ok-2 run at once: whichever ended last comes first; ending in the same millisecond
    // (one report of the agent can carry both), the list's order stands: the newer submission first.
    const [first, second] = (await Promise.all(['ok-2', 'ok-1'].map((id) => c.getJob(id)))).sort((a, b) => (b.end_time ?? 0) - (a.end_time ?? 0));
    expect(plain.stdout).toMatch(new RegExp(String.raw`Recent successes\nJOB +ENDED +TOOK +TASKS +ENTRYPOINT\n${first?.submission_id} +\S+ ago .*\n${second?.submission_id} `));
    expect(plain.stdout).toMatch(/Schedules due next\n/);
    for (const id of ['sweep', ...Array.from({ length: 6 }, (_, i) => `waits-${i}`)]) await c.stopJob(id);
  });
});

describe('shell completion', () => {
  function bashComplete(script: string, line: string): string[] {
    const words = line.split(' ');
    const r = spawnSync('bash', ['-c', `source "$1"; COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _raysub; printf '%s\\n' "\${COMPREPLY[@]}"`, 'bash', script], {
      encoding: 'utf8',
    });
    expect(r.stderr).toBe('');
    return r.stdout.split('\n').filter(Boolean);
  }

  it('completes commands, flags and flag values in bash', async () => {
    const r = await runCli(['completion', 'bash']);
    expect(r.code).toBe(0);
    const script = path.join(tempDir(), 'raysub.bash');
    fs.writeFileSync(script, r.stdout);
    expect(bashComplete(script, 'raysub sch')).toEqual(['schedule']);
    expect(bashComplete(script, 'raysub ')).toEqual(['start', 'stop', 'job', 'nodes', 'node', 'schedule', 'status', 'dashboard', 'token', 'cert', 'completion']);
    expect(bashComplete(script, 'raysub schedule ')).toEqual(['create', 'list', 'get', 'runs', 'pause', 'resume', 'trigger', 'delete']);
    expect(bashComplete(script, 'raysub schedule create nightly --concurrency ')).toEqual(['allow', 'forbid', 'replace']);
    expect(bashComplete(script, 'raysub schedule create nightly --concurrency forbid --sus')).toEqual(['--suspend']);
    expect(bashComplete(script, 'raysub job submit --entrypoint-num-cpus 2 --par')).toEqual(['--parallel']);
    expect(bashComplete(script, 'raysub status --w')).toEqual(['--watch']);
    expect(bashComplete(script, 'raysub job l')).toEqual(['logs', 'list']);
    // After --: the entrypoint, completed as files.
    const files = bashComplete(script, `raysub job submit -- ${path.join(repoRoot, 'packa')}`);
    expect(files).toContain(path.join(repoRoot, 'package.json'));
    expect((await runCli(['completion', 'fish'])).code).toBe(64);
  });

  it.skipIf(!hasZsh)('loads in zsh and registers for raysub', async () => {
    const r = await runCli(['completion', 'zsh']);
    const script = path.join(tempDir(), '_raysub');
    fs.writeFileSync(script, r.stdout);
    expect(spawnSync('zsh', ['-n', script]).status).toBe(0);
    const z = spawnSync('zsh', ['-f', '-c', `autoload -U compinit && compinit -u -D && source "$1" && print -r -- $_comps[raysub] && _raysub_subs schedule && _raysub_value_kind 'schedule create' --concurrency`, 'zsh', script], { encoding: 'utf8' });
    expect(z.stderr).toBe('');
    expect(z.stdout).toBe('_raysub\ncreate list get runs pause resume trigger delete\nchoices allow forbid replace\n');
  });
});

describe('start-up', () => {
  /** Run node with a resolve hook that records every module the command loads. */
  function traceModules(args: string[]): { modules: string[]; ms: number } {
    const trace = path.join(tempDir(), 'modules.txt');
    const hook = `import fs from 'node:fs'; let file; export function initialize(d) { file = d.file; } export async function resolve(s, c, next) { const r = await next(s, c); fs.appendFileSync(file, r.url + '\\n'); return r; }`;
    const preload = `import { register } from 'node:module'; register('data:text/javascript,' + encodeURIComponent(${JSON.stringify(hook)}), { data: { file: ${JSON.stringify(trace)} } });`;
    const started = Date.now();
    const r = spawnSync(process.execPath, ['--import', `data:text/javascript,${encodeURIComponent(preload)}`, ...args], { encoding: 'utf8', cwd: repoRoot });
    expect(r.status, r.stderr).toBe(0);
    return { modules: fs.readFileSync(trace, 'utf8').split('\n').filter(Boolean), ms: Date.now() - started };
  }
  const heavy = (mods: string[]) => mods.filter((m) => /\/node_modules\/(ink|react|react-reconciler|yoga-layout|better-sqlite3|croner)\//.test(m));

  it('keeps `raysub --help` free of ink, react and SQLite', () => {
    const help = traceModules([cliPath, '--help']);
    expect(help.modules.some((m) => m.includes('/node_modules/commander/'))).toBe(true); // the trace works
    expect(heavy(help.modules)).toEqual([]);
    expect(help.ms).toBeLessThan(5000); // a coarse guard on a shared, busy machine
    expect(heavy(traceModules([cliPath, 'schedule', 'create', '--help']).modules)).toEqual([]);
    // ...and the trace does see ink when something loads it.
    expect(heavy(traceModules(['--input-type=module', '-e', "await import('ink')"]).modules).length).toBeGreaterThan(0);
  });

  it('`job list --json` loads neither the packer\'s libraries (tar, ignore) nor ink, react or SQLite, nor undici whole', async () => {
    const head = await startHead({ numCpus: 1 });
    const traced = traceModules([cliPath, 'job', 'list', '--limit', '100', '--json', '--address', head.url, '--token-file', path.join(head.dataDir, 'token')]);
    expect(traced.modules.some((m) => m.includes('/dist/client/packer.js'))).toBe(true); // the trace sees the module that would load them
    expect(traced.modules.filter((m) => /\/node_modules\/(tar|ignore|ink|react|better-sqlite3)\//.test(m))).toEqual([]);
    // The call loads the parts of undici it uses, not undici's main module (fetch, WebSocket,
    // mocks, caches: most of its files), which the trace sees whenever something imports it.
    expect(traced.modules.some((m) => m.includes('/dist/shared/undici.js'))).toBe(true);
    expect(traced.modules.filter((m) => m.includes('/node_modules/undici/'))).toEqual([]);
    expect(traceModules(['--input-type=module', '-e', "await import('undici')"]).modules.some((m) => m.includes('/node_modules/undici/index.js'))).toBe(true);
    // Nor does a head or an agent (its peers' client included), whose every module stays loaded.
    const servers = traceModules(['--input-type=module', '-e', "await import('./dist/head/index.js'); await import('./dist/agent/index.js')"]).modules;
    expect(servers.some((m) => m.includes('/dist/agent/injob/peer.js'))).toBe(true);
    expect(servers.filter((m) => m.includes('/node_modules/undici/'))).toEqual([]);
  });

  it('loads ink only for the live view: plain `raysub status` does not', async () => {
    const head = await startHead({ numCpus: 1 });
    const traced = traceModules([cliPath, 'status', '--address', head.url, '--token-file', path.join(head.dataDir, 'token')]);
    expect(traced.modules.some((m) => m.includes('/dist/ui/status/sections.js'))).toBe(true);
    expect(traced.modules.filter((m) => /\/node_modules\/(ink|react)\//.test(m))).toEqual([]);
  });
});
