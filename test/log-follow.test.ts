/**
 * Following logs never lies: keep-alives while a job is quiet or queued (with its place in the
 * queue), a silent connection told apart from a quiet job, a head restarted mid-follow reattached
 * where the log stopped, and every follower ended on every path. The keep-alive interval and the
 * client's idle limit are shortened so that seconds stand for minutes.
 */
import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { runCli, spawnCli, startAgent, startHead, waitFor, type TestHead } from './helpers/cluster.js';
import { freePort, startProxy } from './helpers/netProxy.js';

const KEEPALIVE_MS = '200';
const IDLE_MS = '1000';
const REACHABILITY = /reach|unavailable|answers again|retrying|reconnect/i;

function py(code: string): string[] {
  return ['python3', '-c', code];
}

async function followers(head: Pick<TestHead, 'url' | 'token'>): Promise<number> {
  const res = await request(`${head.url}/metrics`, { headers: { authorization: `Bearer ${head.token}` } });
  const m = /^raysub_log_followers (\d+)$/m.exec(await res.body.text());
  return Number(m?.[1] ?? NaN);
}

/** Resolve once a follower of job `id` has been sent `n` keep-alives (a condition, not a sleep). */
async function keepalivesSent(head: Pick<TestHead, 'url' | 'token'>, id: string, n: number): Promise<void> {
  const ac = new AbortController();
  const res = await request(`${head.url}/api/jobs/${id}/logs/stream?follow=true`, { headers: { authorization: `Bearer ${head.token}` }, signal: ac.signal });
  let seen = 0;
  try {
    for await (const chunk of res.body) {
      seen += ((chunk as Buffer).toString().match(/"keepalive":true/g) ?? []).length;
      if (seen >= n) break;
    }
  } finally {
    ac.abort();
  }
}

describe('following a quiet or queued job', () => {
  it('stays attached through a quiet period several times the idle limit, and says nothing about the head', async () => {
    const head = await startHead({ numCpus: 2, env: { RAYSUB_LOG_KEEPALIVE_MS: KEEPALIVE_MS } });
    const r = await runCli(['job', 'submit', '--', ...py("import time; print('start', flush=True); time.sleep(6); print('done')")], {
      env: { ...head.env, RAYSUB_FOLLOW_IDLE_MS: IDLE_MS },
    });
    expect(r.stderr).not.toMatch(REACHABILITY);
    expect(r.stdout).toBe('start\ndone\n');
    expect(r.code).toBe(0);
  });

  it('sends the job state at once and keep-alives while nothing else is sent', async () => {
    const head = await startHead({ numCpus: 2, env: { RAYSUB_LOG_KEEPALIVE_MS: KEEPALIVE_MS } });
    await head.client.submitJob({ entrypoint: "python3 -c \"import time; print('hi', flush=True); time.sleep(3)\"", submission_id: 'quiet' });
    const res = await request(`${head.url}/api/jobs/quiet/logs/stream?follow=true`, { headers: { authorization: `Bearer ${head.token}` } });
    const lines: { at: number; line: Record<string, unknown> }[] = [];
    let buffer = '';
    for await (const chunk of res.body) {
      buffer += (chunk as Buffer).toString();
      let nl: number;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        lines.push({ at: Date.now(), line: JSON.parse(buffer.slice(0, nl)) as Record<string, unknown> });
        buffer = buffer.slice(nl + 1);
      }
    }
    expect(lines[0]?.line).toMatchObject({ keepalive: true, keepalive_ms: 200 });
    expect(lines.find((l) => 'data' in l.line)?.line).toMatchObject({ task: 0, stream: 'stdout', data: 'hi\n', offset: 3 });
    const quiet = lines.filter((l) => l.line.keepalive && l.line.status === 'RUNNING');
    // About three seconds of silence at 200 ms: many keep-alives, none far apart.
    expect(quiet.length).toBeGreaterThanOrEqual(5);
    const gaps = quiet.slice(1).map((l, i) => l.at - (quiet[i] as { at: number }).at);
    expect(Math.max(...gaps)).toBeLessThan(2500);
    expect(lines[lines.length - 1]?.line).toEqual({ end: true, status: 'SUCCEEDED' });
  });

  it('says once that the job is queued, where, and why, then that it runs', async () => {
    const head = await startHead({ numCpus: 1, env: { RAYSUB_LOG_KEEPALIVE_MS: KEEPALIVE_MS } });
    const env = { ...head.env, RAYSUB_FOLLOW_IDLE_MS: IDLE_MS };
    await head.client.submitJob({ entrypoint: 'sleep 300', submission_id: 'blocker', entrypoint_num_cpus: 1 });
    await waitFor(async () => (await head.client.getJob('blocker')).status === 'RUNNING', { what: 'the blocker to run' });
    const second = spawnCli(['job', 'submit', '--submission-id', 'second', '--', ...py("print('second')")], { env });
    await waitFor(() => second.output().includes('job is queued'), { what: 'the queue notice' });
    // Many keep-alives go by while it waits; the notice is not repeated.
    await keepalivesSent(head, 'second', 6);
    await head.client.stopJob('blocker');
    const r = await second.result;
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('second\n');
    const queued = r.stderr.split('\n').filter((l) => l.includes('job is queued'));
    expect(queued).toHaveLength(1);
    expect(queued[0]).toMatch(/job is queued \(position 1\): .*CPU/);
    expect(r.stderr.split('\n').filter((l) => l.includes('job is running'))).toHaveLength(1);
    expect(r.stderr).not.toMatch(REACHABILITY);
    // -q: only the job's own output.
    await head.client.submitJob({ entrypoint: 'sleep 300', submission_id: 'blocker-2', entrypoint_num_cpus: 1 });
    await waitFor(async () => (await head.client.getJob('blocker-2')).status === 'RUNNING', { what: 'the second blocker to run' });
    const third = spawnCli(['job', 'submit', '-q', '--submission-id', 'third', '--', ...py("print('third')")], { env });
    await waitFor(async () => (await head.client.getJob('third').catch(() => null))?.status === 'PENDING', { what: 'the third job to queue' });
    await keepalivesSent(head, 'third', 4);
    await head.client.stopJob('blocker-2');
    const quiet = await third.result;
    expect(quiet.stderr).toBe('');
    expect(quiet.stdout).toBe('third\n');
  });
});

describe('a connection or a head that goes away', () => {
  it('reopens a connection that went silent, where it stopped, without a word', async () => {
    const head = await startHead({ numCpus: 2, env: { RAYSUB_LOG_KEEPALIVE_MS: KEEPALIVE_MS } });
    const proxy = await startProxy({ target: () => new URL(head.url), stallResponseOnce: /logs\/stream/ });
    const code = "import time\nfor i in range(30):\n    print(f'line {i}', flush=True)\n    time.sleep(0.1)";
    const r = await runCli(['job', 'submit', '--', ...py(code)], { env: { ...head.env, RAYSUB_ADDRESS: proxy.url, RAYSUB_FOLLOW_IDLE_MS: IDLE_MS } });
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(Array.from({ length: 30 }, (_, i) => `line ${i}\n`).join(''));
    expect(proxy.stalled).toBeGreaterThan(0);
    expect(proxy.requests.filter((l) => l.includes('/logs/stream')).length).toBeGreaterThanOrEqual(2);
    expect(r.stderr).not.toMatch(REACHABILITY);
  });

  it('reattaches to a head restarted mid-follow: nothing printed twice, nothing skipped', async () => {
    const port = await freePort();
    const env = { RAYSUB_LOG_KEEPALIVE_MS: KEEPALIVE_MS };
    const head = await startHead({ localAgent: false, port, env });
    await startAgent(head, { name: 'steady', numCpus: 1 });
    const code = "import time\nfor i in range(40):\n    print(f'line {i}', flush=True)\n    time.sleep(0.15)";
    const follower = spawnCli(['job', 'submit', '--submission-id', 'restarted', '--', ...py(code)], {
      env: { ...head.env, RAYSUB_FOLLOW_IDLE_MS: IDLE_MS },
    });
    await waitFor(() => follower.output().includes('line 5'), { what: 'output before the restart' });
    await head.kill('SIGKILL');
    await startHead({ localAgent: false, port, dataDir: head.dataDir, env });
    const r = await follower.result;
    expect(r.stdout).toBe(Array.from({ length: 40 }, (_, i) => `line ${i}\n`).join(''));
    expect(r.code).toBe(0);
    // The head was really gone for a while: saying so is the truth, and it is said as such.
    for (const l of r.stderr.split('\n').filter((x) => REACHABILITY.test(x))) expect(l).toMatch(/cannot reach the head|answers again/);
  });
});

describe('followers end on every path', () => {
  it('when the client goes, when the job is deleted under a reader that does not read, and when the head closes', async () => {
    const head = await startHead({ numCpus: 2, env: { RAYSUB_LOG_KEEPALIVE_MS: KEEPALIVE_MS } });
    const auth = { authorization: `Bearer ${head.token}` };
    await head.client.submitJob({ entrypoint: 'sleep 30', submission_id: 'long' });
    // A client that goes away.
    const ac = new AbortController();
    const res = await request(`${head.url}/api/jobs/long/logs/stream?follow=true`, { headers: auth, signal: ac.signal });
    const ws = new WebSocket(`${head.url.replace('http', 'ws')}/api/jobs/long/logs/tail`, { headers: auth });
    const ping = await new Promise<string>((resolve, reject) => {
      ws.once('ping', (data: Buffer) => resolve(data.toString()));
      ws.once('error', reject);
    });
    expect(JSON.parse(ping)).toMatchObject({ status: expect.stringMatching(/PENDING|RUNNING/) as unknown });
    expect(await followers(head)).toBe(2);
    ac.abort();
    await res.body.dump().catch(() => undefined);
    ws.close();
    await expect.poll(() => followers(head), { timeout: 10_000 }).toBe(0);

    // A finished job with a large log, followed by a reader that never reads, then deleted.
    const big = "import sys\nfor i in range(400000):\n    sys.stdout.write(f'{i:>10} some output to fill the pipe\\n')";
    await head.client.submitJob({ entrypoint: `python3 -c "${big.replace(/"/g, '\\"')}"`, submission_id: 'big' });
    await head.client.waitForJob('big');
    const stuck = await request(`${head.url}/api/jobs/big/logs/stream`, { headers: auth });
    await expect.poll(() => followers(head), { timeout: 10_000 }).toBe(1);
    await head.client.deleteJob('big');
    await expect.poll(() => followers(head), { timeout: 10_000 }).toBe(0);
    await stuck.body.dump().catch(() => undefined);

    // The head closes while followers are open: it still stops on its own, promptly.
    const open = await request(`${head.url}/api/jobs/long/logs/stream?follow=true`, { headers: auth });
    const tail = new WebSocket(`${head.url.replace('http', 'ws')}/api/jobs/long/logs/tail`, { headers: auth });
    await new Promise((resolve) => tail.once('open', resolve));
    await expect.poll(() => followers(head), { timeout: 10_000 }).toBe(2);
    const started = Date.now();
    await head.stop();
    expect(head.proc.signalCode).toBeNull();
    expect(head.proc.exitCode).toBe(0);
    expect(Date.now() - started).toBeLessThan(9000);
    await open.body.dump().catch(() => undefined);
  });
});
