/**
 * The CLI as a CI pipeline uses it: exit codes per the README's table, JSON whose shape scripts
 * can rely on, quiet output, and retries that never create a second job.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { jobDetailsSchema } from '../src/shared/protocol/index.js';
import { cliPath, repoRoot, runCli, spawnCli, startAgent, startHead, tempDir, waitFor, workingDir } from './helpers/cluster.js';
import { freePort, startProxy } from './helpers/netProxy.js';

/** The keys of `job status|wait|submit --json`, as docs/cli-json.md documents them. */
const JOB_KEYS = [
  'driver_agent_http_address', 'driver_exit_code', 'driver_info', 'driver_node_id', 'end_time', 'entrypoint', 'error_type', 'job_id',
  'message', 'metadata', 'raysub', 'runtime_env', 'start_time', 'status', 'submission_id', 'type',
];
const RAYSUB_KEYS = [
  'after', 'after_any', 'array', 'created_at', 'driver_node', 'driver_on_head', 'entrypoint_memory', 'entrypoint_num_cpus', 'entrypoint_num_gpus',
  'entrypoint_resources', 'error_type', 'held', 'injob', 'max_concurrent', 'max_retries', 'memory_limit', 'message', 'parallel', 'priority', 'queue',
  'retry_backoff_s', 'schedule', 'started_at', 'task_counts', 'tasks', 'timeout_s', 'usage', 'wait_for_capacity',
];

function parseJob(text: string) {
  const raw = JSON.parse(text) as Record<string, unknown>;
  expect(Object.keys(raw).sort()).toEqual(JOB_KEYS);
  const job = jobDetailsSchema.parse(raw);
  expect(Object.keys(job.raysub).sort()).toEqual(RAYSUB_KEYS);
  return job;
}

describe('CI: exit codes and JSON', () => {
  it('success, failure with code 7, quiet output and NDJSON logs', async () => {
    const head = await startHead({ numCpus: 2 });
    const dir = workingDir({ 'ok.py': 'print("all good")\n', 'fail.sh': 'echo "about to fail"\necho "bad thing" >&2\nexit 7\n' });

    const ok = await runCli(['job', 'submit', '--working-dir', dir, '--submission-id', 'ci-ok', '--json', '--', 'python3', 'ok.py'], { env: head.env });
    expect(ok.code).toBe(0);
    expect(parseJob(ok.stdout)).toMatchObject({ submission_id: 'ci-ok', status: 'SUCCEEDED', driver_exit_code: 0, error_type: null });

    // -q: the job's own output and nothing else, so a pipeline's log is the job's log.
    const quiet = await runCli(['job', 'submit', '--working-dir', dir, '-q', '--', 'python3', 'ok.py'], { env: head.env });
    expect(quiet).toMatchObject({ code: 0, stdout: 'all good\n', stderr: '' });

    const failed = await runCli(['job', 'submit', '--working-dir', dir, '--submission-id', 'ci-7', '--', 'sh', 'fail.sh'], { env: head.env });
    expect(failed.code).toBe(7);
    // The job's stdout and stderr are one stream, in the order it wrote them (docs/logs.md).
    expect(failed.stdout).toBe('about to fail\nbad thing\n');
    expect(failed.stderr).toMatch(/Job 'ci-7' failed \(ENTRYPOINT_FAILED\)/);

    const wait = await runCli(['job', 'wait', 'ci-7', '--json'], { env: head.env });
    expect(wait.code).toBe(7);
    expect(parseJob(wait.stdout)).toMatchObject({ status: 'FAILED', driver_exit_code: 7, error_type: 'JOB_ENTRYPOINT_COMMAND_ERROR', raysub: { error_type: 'ENTRYPOINT_FAILED' } });
    const status = await runCli(['job', 'status', 'ci-7', '--json'], { env: head.env });
    expect(status.code).toBe(0); // a read command succeeds; the job's outcome is in the JSON
    expect(parseJob(status.stdout).raysub.tasks?.[0]).toMatchObject({ index: 0, state: 'FAILED', exit_code: 7 });

    const logs = await runCli(['job', 'logs', 'ci-7', '--follow', '--json'], { env: head.env });
    expect(logs.code).toBe(7);
    const lines = logs.stdout.trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.filter((l) => l.stream === 'stdout').map((l) => l.data).join('')).toBe('about to fail\nbad thing\n');
    expect(lines.filter((l) => l.stream === 'stderr')).toEqual([]);
    expect(lines.at(-1)).toEqual({ end: true, submission_id: 'ci-7', status: 'FAILED', error_type: 'ENTRYPOINT_FAILED', driver_exit_code: 7 });

    const list = await runCli(['job', 'list', '--json', '--status', 'FAILED'], { env: head.env });
    const listed = JSON.parse(list.stdout) as { jobs: unknown[]; next_cursor: string | null };
    expect(Object.keys(listed).sort()).toEqual(['jobs', 'next_cursor']);
    expect(listed.jobs.map((j) => jobDetailsSchema.parse(j).submission_id)).toEqual(['ci-7']);
  });

  it('stop exits 130, wait --timeout exits 124, a job timeout exits 1', async () => {
    const head = await startHead({ numCpus: 2 });
    const sub = await runCli(['job', 'submit', '--no-wait', '--json', '--submission-id', 'ci-long', '--', 'sleep', '60'], { env: head.env });
    expect(sub.code).toBe(0);
    expect(JSON.parse(sub.stdout)).toEqual({ submission_id: 'ci-long' });
    await waitFor(async () => (await head.client.getJob('ci-long')).status === 'RUNNING', { what: 'ci-long to run' });

    const timedOut = await runCli(['job', 'wait', 'ci-long', '--timeout', '1', '--json'], { env: head.env });
    expect(timedOut.code).toBe(124);
    expect(parseJob(timedOut.stdout).status).toBe('RUNNING');
    const timedOutText = await runCli(['job', 'wait', 'ci-long', '--timeout', '0.5'], { env: head.env });
    expect(timedOutText.code).toBe(124);
    expect(timedOutText.stderr).toMatch(/still RUNNING after the wait timeout/);

    const waiter = spawnCli(['job', 'wait', 'ci-long', '--json'], { env: head.env });
    const follower = spawnCli(['job', 'logs', 'ci-long', '--follow'], { env: head.env });
    const stop = await runCli(['job', 'stop', 'ci-long', '--json'], { env: head.env });
    expect(stop.code).toBe(0);
    expect(parseJob(stop.stdout)).toMatchObject({ status: 'STOPPED', error_type: null, raysub: { error_type: 'STOPPED_BY_USER' } });
    const waited = await waiter.result;
    expect(waited.code).toBe(130);
    expect(parseJob(waited.stdout).status).toBe('STOPPED');
    expect((await follower.result).code).toBe(130);

    const jobTimeout = await runCli(['job', 'submit', '--timeout', '1', '--json', '--', 'sleep', '30'], { env: head.env });
    expect(jobTimeout.code).toBe(1);
    // The process raysub killed has an exit status, but not one of its own: the CLI exits 1.
    expect(parseJob(jobTimeout.stdout)).toMatchObject({ status: 'FAILED', error_type: 'JOB_SUPERVISOR_ACTOR_UNKNOWN_FAILURE', raysub: { error_type: 'TIMEOUT' } });

    expect((await runCli(['job', 'wait', 'no-such-job'], { env: head.env })).code).toBe(65);
    expect((await runCli(['job', 'wait', 'ci-long', '--timeout', 'soon'], { env: head.env })).code).toBe(64);
    expect((await runCli(['job', 'status', 'ci-long'], { env: { ...head.env, RAYSUB_TOKEN: 'wrong' } })).code).toBe(77);
  });
});

describe('CI: retries never duplicate a job', () => {
  it('a submission whose answer is lost is retried and returns the one job', async () => {
    const head = await startHead({ numCpus: 2 });
    const proxy = await startProxy({ target: () => new URL(head.url), dropResponseOnce: /^POST \/api\/jobs\/ / });
    const env = { ...head.env, RAYSUB_ADDRESS: proxy.url };
    const r = await runCli(['job', 'submit', '--submission-id', 'ci-dropped', '--json', '--', 'echo', 'once'], { env });
    expect(proxy.dropped).toBe(1);
    expect(r.stderr).toMatch(/retrying in \d/);
    expect(r.code).toBe(0);
    expect(parseJob(r.stdout)).toMatchObject({ submission_id: 'ci-dropped', status: 'SUCCEEDED' });
    // The head got the submission twice (the first answer was dropped) and kept one job.
    expect(proxy.requests.filter((l) => l.startsWith('POST /api/jobs/'))).toHaveLength(2);
    const { jobs } = await head.client.listJobs();
    expect(jobs.map((j) => j.submission_id)).toEqual(['ci-dropped']);
    expect(await head.client.getLogs('ci-dropped')).toBe('once\n');
  });

  it('submit and wait ride out a head killed and restarted on the same address', async () => {
    const head = await startHead({ localAgent: false, port: await freePort() });
    await startAgent(head, { name: 'ci-agent', numCpus: 2 });
    const sub = await runCli(['job', 'submit', '--no-wait', '--submission-id', 'ci-survivor', '--', 'sh', '-c', 'sleep 4; exit 7'], { env: head.env });
    expect(sub.code).toBe(0);
    await waitFor(async () => (await head.client.getJob('ci-survivor')).status === 'RUNNING', { what: 'the job to run' });

    // As the README's CI advice has it, the pipeline sets RAYSUB_CONNECT_RETRY_S: a command that
    // starts while the head is down waits for it (without it, a head that never answered the
    // command is reported within a second).
    const ciEnv = { ...head.env, RAYSUB_CONNECT_RETRY_S: '120' };
    const waiter = spawnCli(['job', 'wait', 'ci-survivor'], { env: ciEnv });
    await head.kill('SIGKILL');
    // While the head is down: a submission starts, fails to connect and keeps retrying.
    const late = spawnCli(['job', 'submit', '--no-wait', '--submission-id', 'ci-late', '--', 'true'], { env: ciEnv });
    await waitFor(() => late.output().includes('retrying'), { what: 'the submission to retry' });
    const restarted = await head.restart();

    const lateResult = await late.result;
    expect(lateResult.code).toBe(0);
    const waited = await waiter.result;
    expect(waited.stderr).toMatch(/cannot reach the head.*retrying/);
    expect(waited.code).toBe(7); // the agent kept the job running; its own code comes through
    const { jobs } = await restarted.client.listJobs();
    expect(jobs.map((j) => j.submission_id).sort()).toEqual(['ci-late', 'ci-survivor']);
  });
});

describe('CI: the README example', () => {
  /** The shell script under "Using raysub in CI", run as a CI system would run it. */
  function readmeScript(): string {
    const readme = fs.readFileSync(path.join(repoRoot, 'README.md'), 'utf8');
    const m = /```sh\n(#!\/bin\/sh\n# Run the evaluation on the raysub cluster[\s\S]*?)```/.exec(readme);
    if (!m?.[1]) throw new Error('the CI shell script is missing from README.md');
    return m[1];
  }

  function runScript(script: string, cwd: string, env: Record<string, string>): Promise<{ code: number; out: string }> {
    const bin = tempDir('raysub-bin-');
    fs.symlinkSync(cliPath, path.join(bin, 'raysub'));
    return new Promise((resolve) => {
      const p = spawn('sh', ['-c', script], { cwd, env: { ...process.env, ...env, PATH: `${bin}:${process.env.PATH ?? ''}` }, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      p.stdout.on('data', (d: Buffer) => (out += d.toString()));
      p.stderr.on('data', (d: Buffer) => (out += d.toString()));
      p.once('exit', (code) => resolve({ code: code ?? 1, out }));
    });
  }

  it('fails the build with the job\'s code when the job fails, passes when it succeeds', async () => {
    const head = await startHead({ numCpus: 2 });
    const script = readmeScript();
    const failing = workingDir({ 'eval.py': 'import sys\nprint("accuracy 0.41")\nsys.exit(7)\n' });
    const bad = await runScript(script, failing, { ...head.env, GIT_COMMIT: 'bad1' });
    expect(bad.code).toBe(7);
    expect(bad.out).toContain('accuracy 0.41');
    expect(bad.out).toContain('evaluation failed with exit code 7:');
    expect(bad.out).toMatch(/Status +FAILED \(ENTRYPOINT_FAILED\)/);

    const passing = workingDir({ 'eval.py': 'print("accuracy 0.97")\n' });
    const good = await runScript(script, passing, { ...head.env, GIT_COMMIT: 'good1' });
    expect(good).toEqual({ code: 0, out: 'accuracy 0.97\n' });
    // Re-running the step for the same commit reattaches to the same job.
    expect(await runScript(script, passing, { ...head.env, GIT_COMMIT: 'good1' })).toEqual({ code: 0, out: 'accuracy 0.97\n' });
    // Re-running it for a commit whose job failed (a flaky failure) runs the job again, then reattaches to that one.
    const flaky = workingDir({ 'eval.py': 'print("accuracy 0.95")\n' });
    expect(await runScript(script, flaky, { ...head.env, GIT_COMMIT: 'bad1' })).toEqual({ code: 0, out: 'accuracy 0.95\n' });
    expect(await runScript(script, flaky, { ...head.env, GIT_COMMIT: 'bad1' })).toEqual({ code: 0, out: 'accuracy 0.95\n' });
    expect((await head.client.listJobs()).jobs.map((j) => j.submission_id).sort()).toEqual(['eval-bad1', 'eval-bad1-2', 'eval-good1']);
  });
});
