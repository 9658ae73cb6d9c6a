/**
 * pip runtime envs end to end, offline: the test writes its own wheels, and the agent's pip sees
 * only them (or a local index the test holds back to keep a build in progress).
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli, startHead, tempDir, waitFor, workingDir, type TestHead } from './helpers/cluster.js';
import { buildWheel, heldIndex, offlinePipEnv, processesMatching } from './helpers/runtimeEnvFixtures.js';

const SHOW = `
import os, subprocess, sys
import tinypkg
print("value", tinypkg.VALUE)
print("python3", sys.executable)
print("python", subprocess.check_output(["python", "-c", "import sys; print(sys.executable)"], text=True).strip())
print("venv", os.environ.get("VIRTUAL_ENV"))
`;

function wheels(): string {
  const dir = tempDir('raysub-wheels-');
  buildWheel(dir, 'tinypkg', '1.0', 'tinypkg', 'VALUE = "tiny-1.0"\n');
  return dir;
}

function envsDir(head: TestHead, kind: string): string {
  return path.join(head.dataDir, 'agent', 'envs', kind);
}

/** Ready envs (with their record) and leftovers (directories without one) in a cache dir. */
function cacheContents(dir: string): { ready: string[]; partial: string[] } {
  const names = fs.existsSync(dir) ? fs.readdirSync(dir) : [];
  const dirs = names.filter((n) => !n.includes('.') && fs.statSync(path.join(dir, n)).isDirectory());
  return { ready: dirs.filter((d) => names.includes(`${d}.json`)), partial: dirs.filter((d) => !names.includes(`${d}.json`)) };
}

async function startDelay(head: TestHead, id: string): Promise<number> {
  const job = await head.client.getJob(id);
  if (job.raysub.started_at === null) throw new Error(`job ${id} never started`);
  return job.raysub.started_at - job.raysub.created_at;
}

describe('pip runtime envs', { timeout: 180_000 }, () => {
  it('builds a virtualenv once, reuses it for the next job, and makes it the job\'s python', async () => {
    const head = await startHead({ numCpus: 2, env: offlinePipEnv(wheels()) });
    const dir = workingDir({ 'show.py': SHOW });
    const rt = JSON.stringify({ pip: ['tinypkg==1.0'] });

    const first = await runCli(['job', 'submit', '--submission-id', 'pip-1', '--working-dir', dir, '--runtime-env-json', rt, '--', 'python3', 'show.py'], { env: head.env });
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toContain('value tiny-1.0');
    expect(first.stdout).toContain('Successfully installed tinypkg-1.0');
    const [env] = cacheContents(envsDir(head, 'pip')).ready;
    expect(env).toBeDefined();
    const venv = path.join(envsDir(head, 'pip'), env ?? '');
    // `python3` and `python` are the virtualenv's (a pyenv shim or /usr/bin would show otherwise).
    expect(first.stdout).toContain(`venv ${venv}`);
    expect(first.stdout).toMatch(new RegExp(`python3 ${venv}/bin/python3?\\n`));
    expect(first.stdout).toMatch(new RegExp(`python ${venv}/bin/python3?\\n`));

    const second = await runCli(['job', 'submit', '--submission-id', 'pip-2', '--working-dir', dir, '--runtime-env-json', rt, '--', 'python3', 'show.py'], { env: head.env });
    expect(second.code, second.stderr).toBe(0);
    expect(second.stdout).toContain('value tiny-1.0');
    const log2 = await head.client.getLogs('pip-2');
    expect(log2).toContain(`reusing the cached env ${env}`);
    expect(log2).not.toMatch(/pip install|Successfully installed|creating a virtualenv/);
    expect(cacheContents(envsDir(head, 'pip')).ready).toEqual([env]);

    const cold = await startDelay(head, 'pip-1');
    const warm = await startDelay(head, 'pip-2');
    console.log(`pip job start: cold ${cold} ms, warm ${warm} ms`);
    expect(warm).toBeLessThan(cold);
    expect(cold - warm).toBeGreaterThan(300);
  });

  it('shares one build between two jobs that ask for the same env at once', async () => {
    const wheelDir = wheels();
    const index = await heldIndex(wheelDir);
    const head = await startHead({ numCpus: 2, env: offlinePipEnv(tempDir('raysub-no-wheels-'), index.url) });
    // Modules of the working dir named like ones the installers import are not theirs to load.
    const shadow = 'raise SystemExit("the installer imported a module of the working dir")\n';
    const dir = workingDir({ 'show.py': SHOW, 'requirements.txt': '# the tiny package\ntinypkg==1.0\n', 'json.py': shadow, 'shutil.py': shadow });
    const rt = JSON.stringify({ pip: 'requirements.txt' });
    for (const id of ['same-a', 'same-b']) {
      const res = await runCli(['job', 'submit', '--no-wait', '--submission-id', id, '--working-dir', dir, '--runtime-env-json', rt, '--', 'python3', 'show.py'], { env: head.env });
      expect(res.code, res.stderr).toBe(0);
    }
    // One task builds (its pip is held at the index); the other waits for that build.
    await waitFor(async () => {
      const logs = [await head.client.getLogs('same-a'), await head.client.getLogs('same-b')];
      return index.requests.length > 0 && logs.some((l) => l.includes('which another task is building'));
    }, { what: 'one job building and the other waiting for it' });
    index.release();
    for (const id of ['same-a', 'same-b']) {
      const job = await head.client.waitForJob(id, { timeoutMs: 60_000 });
      expect(job.status, job.message ?? '').toBe('SUCCEEDED');
    }
    const logs = [await head.client.getLogs('same-a'), await head.client.getLogs('same-b')];
    for (const l of logs) expect(l).toContain('value tiny-1.0');
    // One job started the build; the other joined it (and was shown its output as it came).
    expect(logs.filter((l) => l.includes('pip: building env'))).toHaveLength(1);
    expect(logs.filter((l) => l.includes('which another task is building'))).toHaveLength(1);
    expect(index.requests.filter((r) => r.startsWith('/simple/tinypkg'))).toHaveLength(1);
    expect(cacheContents(envsDir(head, 'pip')).ready).toHaveLength(1);
  });

  it('fails a broken requirement as RUNTIME_ENV_SETUP_FAILED with pip\'s error, leaving no half-built env', async () => {
    const head = await startHead({ numCpus: 1, env: offlinePipEnv(wheels()) });
    const res = await runCli(
      ['job', 'submit', '--submission-id', 'broken', '--runtime-env-json', JSON.stringify({ pip: ['tinypkg==1.0', 'no-such-package-raysub==9.9'] }), '--', 'python3', '-c', 'print(1)'],
      { env: head.env },
    );
    expect(res.code).toBe(1);
    const job = await head.client.getJob('broken');
    expect(job).toMatchObject({ status: 'FAILED', error_type: 'RUNTIME_ENV_SETUP_FAILURE', raysub: { error_type: 'RUNTIME_ENV_SETUP_FAILED' } });
    expect(job.message).toContain('pip install failed with exit code 1');
    expect(job.message).toContain('No matching distribution found for no-such-package-raysub==9.9');
    const log = await head.client.getLogs('broken');
    expect(log).toContain('ERROR: Could not find a version that satisfies the requirement no-such-package-raysub==9.9');
    expect(log).toContain('runtime env setup failed');
    expect(cacheContents(envsDir(head, 'pip'))).toEqual({ ready: [], partial: [] });
  });

  it('stops a job during a slow pip install, killing pip, and times out a setup that takes too long', async () => {
    const index = await heldIndex(tempDir('raysub-no-wheels-'));
    const head = await startHead({ numCpus: 2, env: offlinePipEnv(tempDir('raysub-no-wheels-'), index.url) });
    const envs = path.join(head.dataDir, 'agent', 'envs');
    const submit = await runCli(['job', 'submit', '--no-wait', '--submission-id', 'slow', '--runtime-env-json', JSON.stringify({ pip: ['tinypkg==1.0'] }), '--', 'python3', '-c', 'print(1)'], {
      env: head.env,
    });
    expect(submit.code, submit.stderr).toBe(0);
    await waitFor(() => index.requests.length > 0 && processesMatching(envs).length > 0, { what: 'pip to be waiting on the index' });
    expect((await head.client.getJob('slow')).status).toBe('PENDING');

    const t0 = Date.now();
    const stop = await runCli(['job', 'stop', 'slow'], { env: head.env });
    expect(stop.code, stop.stderr).toBe(0);
    const job = await head.client.getJob('slow');
    expect(job).toMatchObject({ status: 'STOPPED', error_type: null, raysub: { error_type: 'STOPPED_BY_USER' } });
    expect(Date.now() - t0).toBeLessThan(10_000);
    await waitFor(() => processesMatching(envs).length === 0, { what: 'pip to be killed', timeoutMs: 10_000 });
    await waitFor(() => cacheContents(path.join(envs, 'pip')).partial.length === 0, { what: 'the half-built env to be removed' });

    const timed = await runCli(
      ['job', 'submit', '--submission-id', 'too-slow', '--runtime-env-json', JSON.stringify({ pip: ['tinypkg==1.0'], config: { setup_timeout_seconds: 1 } }), '--', 'python3', '-c', 'print(1)'],
      { env: head.env },
    );
    expect(timed.code).toBe(1);
    const failed = await head.client.getJob('too-slow');
    expect(failed).toMatchObject({ status: 'FAILED', error_type: 'RUNTIME_ENV_SETUP_FAILURE', raysub: { error_type: 'RUNTIME_ENV_SETUP_FAILED' } });
    expect(failed.message).toContain('did not finish within 1s');
    await waitFor(() => processesMatching(envs).length === 0, { what: 'pip to be killed after the timeout', timeoutMs: 10_000 });
  });
});
