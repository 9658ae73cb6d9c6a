/**
 * What a careless or hurried user meets first: memory without a unit, a head that is not there or
 * a host that does not resolve, Ctrl-C while `submit` follows a job, a foreground `start` on a
 * terminal and under a service manager. The real CLI, a real head.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli, spawnCli, startHead, tempDir, waitFor } from './helpers/cluster.js';
import { freePort } from './helpers/netProxy.js';
import { ptyAvailable, runCliInPty } from './helpers/pty.js';

describe('CLI ergonomics', () => {
  it('refuses a bare memory size under 1 MiB, suggesting a unit', async () => {
    const r = await runCli(['job', 'submit', '--no-wait', '--entrypoint-memory', '4096', '--', 'true'], { env: { RAYSUB_ADDRESS: 'http://127.0.0.1:1' } });
    expect(r.code).toBe(64);
    expect(r.stderr).toMatch(/--entrypoint-memory 4096 means 4096 bytes, less than any process needs: write a unit, e\.g\. 4096M or 512M/);
    const agent = await runCli(['start', '--address', 'http://127.0.0.1:1', '--token', 'x', '--memory', '512'], {});
    expect(agent.code).toBe(64);
    expect(agent.stderr).toMatch(/--memory 512 means 512 bytes/);
    const env = await runCli(['start', '--address', 'http://127.0.0.1:1', '--token', 'x'], { env: { RAYSUB_MEMORY: '1000' } });
    expect(env.code).toBe(64);
    expect(env.stderr).toMatch(/RAYSUB_MEMORY 1000 means 1000 bytes/);
  });

  it('says within 2 s, naming the address, that no head answers or that its host does not resolve', async () => {
    const port = await freePort();
    for (const [address, message] of [
      [`http://127.0.0.1:${port}`, new RegExp(`no head answers at http://127\\.0\\.0\\.1:${port} \\(ECONNREFUSED\\); is it running\\?`)],
      ['http://no-such-host.invalid:8265', /cannot resolve the head's host no-such-host\.invalid \((ENOTFOUND|EAI_AGAIN)\); tried http:\/\/no-such-host\.invalid:8265/],
    ] as const) {
      const started = Date.now();
      const r = await runCli(['job', 'list', '--address', address]);
      const took = Date.now() - started;
      expect(r.code, r.stderr).toBe(69);
      expect(r.stderr).toMatch(message);
      expect(took, `${address}: ${took} ms`).toBeLessThan(2000);
    }
  });

  it('Ctrl-C on submit lets go of the job, says how to reattach or stop it, and exits 75', async () => {
    const head = await startHead({ numCpus: 1 });
    const cli = spawnCli(['job', 'submit', '--submission-id', 'held-on', '--', 'sleep', '120'], { env: head.env });
    await waitFor(async () => (await head.client.getJob('held-on')).status === 'RUNNING' && cli.output().includes('following its logs'), { what: 'the job to run' });
    cli.proc.kill('SIGINT');
    const r = await cli.result;
    expect(r.code).toBe(75);
    expect(r.stderr).toContain("raysub: stopped following job 'held-on'; it keeps running.");
    expect(r.stderr).toContain('Reattach: raysub job logs held-on --follow');
    expect(r.stderr).toContain('Stop it:  raysub job stop held-on');
    expect((await head.client.getJob('held-on')).status).toBe('RUNNING');
    expect((await runCli(['job', 'stop', 'held-on'], { env: head.env })).code).toBe(0);
  });

  it('a foreground start prints human lines on a terminal and JSON lines otherwise', async () => {
    // Without a terminal (a service manager, a pipe): one JSON record per line.
    const head = await startHead({ localAgent: false, args: ['--log-level', 'info'] });
    await waitFor(() => head.output().includes('"msg"'), { what: 'a log line' });
    const jsonLines = head.output().split('\n').filter((l) => l.startsWith('{'));
    expect(jsonLines.length).toBeGreaterThan(0);
    for (const l of jsonLines) expect(JSON.parse(l)).toMatchObject({ level: expect.any(Number) as unknown, msg: expect.any(String) as unknown });

    if (!(await ptyAvailable())) {
      console.warn('skipped the terminal half: python3 with its pty module is not here');
      return;
    }
    const dir = tempDir('raysub-fg-');
    const term = runCliInPty(['start', '--head', '--port', '0', '--data-dir', dir, '--no-local-agent', '--log-level', 'info'], { env: { NO_COLOR: '1' } });
    await waitFor(() => /\d\d:\d\d:\d\d INFO {2}raysub-head: /.test(term.output()), { what: 'a human log line', timeoutMs: 60_000 });
    await waitFor(() => fs.existsSync(path.join(dir, 'head.json')), { what: 'the head to be up' });
    expect(term.output()).not.toMatch(/\{"level":/);
    term.type('\x03');
    expect(await term.exited).toBe(0);
  });
});
