/**
 * `raysub status`: plain text without a terminal (never an escape code), JSON, and the ink live
 * view on a pseudo-terminal (renders, refreshes, quits on q and Ctrl-C). A capture of the live
 * view is kept in test/fixtures/status-live.txt (refresh it with RAYSUB_UPDATE_FIXTURES=1).
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli, spawnCli, startHead, waitFor, type TestHead } from './helpers/cluster.js';
import { ptyAvailable, runCliInPty } from './helpers/pty.js';
import { renderScreen } from './helpers/screen.js';

const FIXTURE = path.join(import.meta.dirname, 'fixtures', 'status-live.txt');
const ESC = '\u001b';
const hasPty = await ptyAvailable();
if (!hasPty) console.warn('status.test.ts: skipping the pseudo-terminal tests: python3 with its pty module is not available');

/** A cluster with something in every section: a running job, a queued one, a failure, schedules. */
async function busyCluster(): Promise<TestHead> {
  const head = await startHead({ numCpus: 2, args: ['--node-name', 'node-1', '--memory', '4G'] });
  // Set up through the SDK (the CLI's own client); the commands under test are run as the CLI.
  const c = head.client;
  await c.submitJob({ entrypoint: 'echo oops; exit 3', submission_id: 'broken' });
  await c.submitJob({ entrypoint: 'sleep 120', submission_id: 'busy', entrypoint_num_cpus: 1 });
  await waitFor(async () => (await c.getJob('broken')).status === 'FAILED' && (await c.getJob('busy')).status === 'RUNNING', { what: 'broken to fail and busy to run' });
  await c.submitJob({ entrypoint: 'sleep 120', submission_id: 'queued', entrypoint_num_cpus: 2 });
  await c.createSchedule({ name: 'hourly', cron: '0 * * * *', job: { entrypoint: 'true' } });
  await c.createSchedule({ name: 'held', cron: '@daily', suspend: true, job: { entrypoint: 'true' } });
  return head;
}

/** Mask what differs from run to run (port, clock, ages, sandbox mode) in a screen capture. */
function mask(screen: string): string {
  return screen
    .replace(/127\.0\.0\.1:\d+/g, '127.0.0.1:PORT')
    .replace(/\d\d:\d\d:\d\dZ/g, 'HH:MM:SSZ')
    .replace(/(?<![\d.])\d+[smhd](\d+[smh])?(?![\w.])/g, (m) => 'Ns'.padEnd(m.length))
    .replace(/\b(bwrap|process|none)\b/g, 'SANDBOX');
}

/** Compare ignoring how wide columns came out (ages differ in width from run to run). */
const layoutFree = (s: string) => s.replace(/[ \t]+/g, ' ').replace(/ +\n/g, '\n').trim();

describe('raysub status', () => {
  it('prints plain text without a terminal, and JSON', async () => {
    const head = await busyCluster();
    // NO_COLOR unset: no terminal alone must be enough for no escape codes.
    const plain = await runCli(['status'], { env: { ...head.env, NO_COLOR: '' } });
    expect(plain.code, plain.stderr).toBe(0);
    expect(plain.stdout + plain.stderr).not.toContain(ESC);
    const out = plain.stdout;
    expect(out).toMatch(/^raysub status {2}http:\/\/127\.0\.0\.1:\d+ {2}\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ\n/);
    expect(out).toMatch(/Nodes \(1\)\nNODE +STATE +CPU +GPU +MEMORY +TASKS +SANDBOX\nnode-1 +ALIVE +1\/2 +0\/0 +0 B\/4\.0 GiB +1 /);
    expect(out).toMatch(/Running \(1\)\nJOB +AGE +TASKS +SCHEDULE +ENTRYPOINT\nbusy +\d+s +1 +- +sleep 120\n/);
    expect(out).toMatch(/Pending \(1\)\nJOB +WAITING +POSITION +REASON\nqueued +\d+s +1 +\S.*CPU/);
    expect(out).toMatch(/Recent failures\nJOB +ENDED +ERROR +EXIT +MESSAGE\nbroken +\d+s ago +ENTRYPOINT_FAILED +3 +job failed: exited with code 3/);
    expect(out).toMatch(/Schedules due next\nSCHEDULE +NEXT RUN +CRON +LAST STATUS +ACTIVE\nhourly +in \S+ +0 \* \* \* \* \(UTC\) +- +0\nheld +paused +@daily \(UTC\) +- +0\n/);

    const json = await runCli(['status', '--json'], { env: head.env });
    expect(json.code).toBe(0);
    const view = JSON.parse(json.stdout) as Record<string, unknown> & { nodes: unknown[]; running: unknown[]; pending: unknown[]; recent_failures: unknown[]; schedules: unknown[] };
    expect(Object.keys(view).sort()).toEqual(['address', 'nodes', 'pending', 'recent_failures', 'recent_successes', 'running', 'schedules', 'time']);
    expect(view.recent_successes).toEqual([]);
    expect(view.nodes).toEqual([
      { name: 'node-1', state: 'ALIVE', cpus: { used: 1, total: 2 }, gpus: { used: 0, total: 0 }, memory: { used: 0, total: 4 * 1024 ** 3 }, running_tasks: 1, sandbox: expect.any(String) as unknown, reason: null },
    ]);
    expect(view.running).toEqual([{ submission_id: 'busy', entrypoint: 'sleep 120', started_at: expect.any(Number) as unknown, age_s: expect.any(Number) as unknown, tasks: 1, progress: '1', schedule: null }]);
    expect(view.pending).toEqual([
      { submission_id: 'queued', entrypoint: 'sleep 120', created_at: expect.any(Number) as unknown, age_s: expect.any(Number) as unknown, position: 1, reason: expect.stringContaining('CPU') as unknown },
    ]);
    expect(view.recent_failures).toEqual([
      { submission_id: 'broken', error_type: 'ENTRYPOINT_FAILED', exit_code: 3, message: 'job failed: exited with code 3; last output:', ended_at: expect.any(Number) as unknown },
    ]);
    expect(view.schedules).toEqual([
      { name: 'hourly', cron: '0 * * * *', timezone: 'UTC', suspended: false, next_run_at: expect.any(Number) as unknown, last_status: null, active_jobs: 0 },
      { name: 'held', cron: '@daily', timezone: 'UTC', suspended: true, next_run_at: null, last_status: null, active_jobs: 0 },
    ]);

    // --watch without a terminal: a snapshot per interval (JSON: one per line) until SIGINT, exit 0.
    const watch = spawnCli(['status', '--watch', '--interval', '0.3', '--json'], { env: head.env });
    await waitFor(() => watch.output().split('\n').filter((l) => l.startsWith('{')).length >= 3, { what: 'three snapshots' });
    watch.proc.kill('SIGINT');
    const watched = await watch.result;
    expect(watched.code).toBe(0);
    expect(watched.stdout).not.toContain(ESC);
    for (const line of watched.stdout.trimEnd().split('\n')) expect(JSON.parse(line)).toHaveProperty('nodes');

    expect((await runCli(['status', '--interval', '0'], { env: head.env })).code).toBe(64);
    await head.client.stopJob('queued');
    await head.client.stopJob('busy');
  });

  it.skipIf(!hasPty)('draws a live view on a terminal that refreshes and quits on q', async () => {
    const head = await busyCluster();
    const term = runCliInPty(['status', '--watch', '--interval', '0.5', '--address', head.url, '--token-file', path.join(head.dataDir, 'token')], { cols: 110, rows: 40 });
    const screen = () => renderScreen(term.output(), 110, 40);
    const first = await waitFor(() => {
      const s = screen();
      return /Running \(1\)[\s\S]*busy[\s\S]*Pending \(1\)[\s\S]*queued[\s\S]*Schedules due next[\s\S]*held/.test(s) ? s : null;
    }, { what: 'the dashboard to draw' });
    // The capture of the live view kept with the tests (masked where runs differ).
    const capture = mask(first) + '\n';
    if (process.env.RAYSUB_UPDATE_FIXTURES || !fs.existsSync(FIXTURE)) fs.writeFileSync(FIXTURE, capture);
    expect(layoutFree(capture)).toBe(layoutFree(fs.readFileSync(FIXTURE, 'utf8')));
    expect(first).toMatch(/^raysub status http:\/\/127\.0\.0\.1:\d+ {2}updated \d\d:\d\d:\d\dZ {2}every 0\.5s, q to quit$/m);
    expect(first).toMatch(/node-1 +ALIVE +█████░░░░░ 1\/2 +░░░░░░░░░░ 0\/0/);
    // Colour on a terminal (no NO_COLOR here): status words are painted.
    expect(term.output()).toContain(`${ESC}[32mALIVE${ESC}[39m`);

    // The cluster changes; the view follows without any key pressed.
    await head.client.stopJob('busy');
    await waitFor(() => /Running \(1\)\s*\nJOB.*\nqueued /.test(screen()) && /Pending \(0\)\s*\nno pending jobs/.test(screen()), { what: 'the view to refresh' });
    expect(screen().match(/^raysub status/gm)).toHaveLength(1); // redrawn in place, not appended

    term.type('q');
    expect(await term.exited).toBe(0);
    expect(term.output()).toContain(`${ESC}[?25h`); // the cursor is given back
    await head.client.stopJob('queued');
  });

  it.skipIf(!hasPty)('quits cleanly on Ctrl-C, and draws once without --watch (NO_COLOR obeyed)', async () => {
    const head = await startHead({ numCpus: 1 });
    const conn = ['--address', head.url, '--token-file', path.join(head.dataDir, 'token')];
    const live = runCliInPty(['status', '--watch', ...conn]);
    await waitFor(() => renderScreen(live.output()).includes('Schedules due next'), { what: 'the dashboard to draw' });
    live.type('\u0003');
    expect(await live.exited).toBe(0);

    const once = runCliInPty(['status', ...conn], { env: { NO_COLOR: '1' } });
    expect(await once.exited).toBe(0);
    const screen = renderScreen(once.output());
    expect(screen).toMatch(/^raysub status http:\/\/127\.0\.0\.1:\d+ {2}updated \d\d:\d\d:\d\dZ\n/);
    expect(screen).not.toContain('q to quit');
    expect(once.output()).not.toMatch(/\u001b\[\d+(;\d+)*m/); // no colour or style at all

    const noColor = runCliInPty(['nodes', '--no-color', ...conn]);
    expect(await noColor.exited).toBe(0);
    expect(noColor.output()).not.toMatch(/\u001b\[\d+(;\d+)*m/);
    const coloured = runCliInPty(['nodes', ...conn]);
    expect(await coloured.exited).toBe(0);
    expect(coloured.output()).toContain(`${ESC}[32mALIVE${ESC}[39m`);
  });
});
