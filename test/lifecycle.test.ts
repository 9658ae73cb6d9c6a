import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { isAlive, runCli, spawnCli, startHead, tempDir, waitFor, workingDir } from './helpers/cluster.js';

describe('running a head', () => {
  it('starts in the background, serves the local CLI without flags, refuses a second head, and stops', async () => {
    const dataDir = tempDir('raysub-detach-');
    const env = { RAYSUB_DATA_DIR: dataDir };
    const started = await runCli(['start', '--head', '--detach', '--port', '0', '--num-cpus', '1', '--log-level', 'warn'], { env });
    expect(started.code, started.stderr).toBe(0);
    const info = JSON.parse(fs.readFileSync(path.join(dataDir, 'head.json'), 'utf8')) as { url: string; pid: number };
    onTestFinished(async () => {
      if (isAlive(info.pid)) process.kill(info.pid, 'SIGKILL');
    });
    expect(started.stdout).toContain(info.url);
    expect(fs.statSync(path.join(dataDir, 'token')).mode & 0o777).toBe(0o600);

    // No address and no token: the CLI finds the head running on this data dir, and its token.
    const dir = workingDir({ 'main.py': 'print("found the local head")\n' });
    const job = await runCli(['job', 'submit', '--working-dir', dir, '--', 'python3', 'main.py'], { env });
    expect(job.code, job.stderr).toBe(0);
    expect(job.stdout).toContain('found the local head');

    const second = await runCli(['start', '--head', '--port', '0', '--log-level', 'warn'], { env });
    expect(second.code).toBe(64);
    expect(second.stderr).toContain(`another head (pid ${info.pid}) is already using this data dir`);

    const stopped = await runCli(['stop'], { env });
    expect(stopped.code).toBe(0);
    expect(stopped.stderr).toContain(`Stopped the head (pid ${info.pid})`);
    expect(isAlive(info.pid)).toBe(false);
    expect(fs.existsSync(path.join(dataDir, 'head.json'))).toBe(false);
    expect((await runCli(['stop'], { env })).code).toBe(64);
  });

  it('shuts down cleanly on SIGTERM and keeps every job across a restart', async () => {
    const head = await startHead({ numCpus: 1 });
    const res = await runCli(['job', 'submit', '--submission-id', 'kept', '--', 'echo kept'], { env: head.env });
    expect(res.code).toBe(0);
    await head.stop();
    expect(head.proc.exitCode).toBe(0);
    expect(fs.existsSync(path.join(head.dataDir, 'head.json'))).toBe(false);
    const again = await head.restart();
    const job = await again.client.getJob('kept');
    expect(job.status).toBe('SUCCEEDED');
    expect(await again.client.getLogs('kept')).toBe('kept\n');
    await waitFor(async () => (await again.client.nodes()).filter((n) => n.state === 'ALIVE').length === 1);
  });

  it('answers a signal that comes while it starts by stopping cleanly once started, not by dying half-way', async () => {
    const dataDir = tempDir('raysub-early-signal-');
    const start = (): ReturnType<typeof spawnCli> => spawnCli(['start', '--head', '--port', '0', '--data-dir', dataDir, '--num-cpus', '1', '--log-level', 'info']);
    const head = start();
    // The head listens (and writes head.json) before its embedded agent has started: signal then.
    await waitFor(() => head.output().includes('head listening'), { what: 'the head to listen', timeoutMs: 60_000 });
    head.proc.kill('SIGTERM');
    const r = await head.result;
    expect(r.code, r.stderr.slice(-2000)).toBe(0);
    expect(r.stderr).toMatch(/SIGTERM received( while starting)?; shutting down/);
    expect(r.stderr).toContain('head stopped');
    expect(fs.existsSync(path.join(dataDir, 'head.json'))).toBe(false);
    // Everything it took was given back: the same data dir starts again.
    const again = start();
    await waitFor(() => again.output().includes('node registered'), { what: 'the head to start again', timeoutMs: 60_000 });
    again.proc.kill('SIGTERM');
    expect((await again.result).code).toBe(0);
  });

  it('stops an agent still waiting for its head at the first signal', async () => {
    const workDir = tempDir('raysub-early-agent-');
    // A port nothing listens on: the agent keeps retrying its registration.
    const agent = spawnCli(['start', '--address', 'http://127.0.0.1:9', '--work-dir', workDir, '--num-cpus', '1', '--log-level', 'info'], { env: { RAYSUB_TOKEN: 'x'.repeat(32) } });
    await waitFor(() => agent.output().includes('cannot register with the head yet'), { what: 'the agent to wait for its head', timeoutMs: 60_000 });
    agent.proc.kill('SIGTERM');
    const r = await agent.result;
    expect(r.code, r.stderr.slice(-2000)).toBe(0);
    expect(r.stderr).toContain('SIGTERM received while starting');
    expect(r.stderr).toContain('agent stopped');
  });
});
