/**
 * A head serving HTTPS with the pair `raysub cert create` makes: the CLI, an agent on another
 * port and Ray's own `ray job submit` work with the CA given, and refuse clearly without it.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli, spawnCli, startAgent, startHead, tempDir, waitFor, workingDir } from './helpers/cluster.js';

const RAY = path.join(os.tmpdir(), 'raysub-test-ray-venv', 'bin', 'ray');

function run(cmd: string, args: string[], env: Record<string, string>): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { env: { ...process.env, ...env }, timeout: 120_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, out: stdout + stderr });
    });
  });
}

async function certs(): Promise<{ cert: string; key: string; ca: string; dir: string }> {
  const dir = path.join(tempDir('raysub-tls-'), 'tls');
  const res = await runCli(['cert', 'create', '--dir', dir, '--host', 'head.example']);
  expect(res.code, res.stderr).toBe(0);
  expect(fs.statSync(path.join(dir, 'head-key.pem')).mode & 0o777).toBe(0o600);
  expect(fs.statSync(path.join(dir, 'ca-key.pem')).mode & 0o777).toBe(0o600);
  // A second run does not overwrite a key someone may rely on.
  const again = await runCli(['cert', 'create', '--dir', dir]);
  expect(again.code).toBe(64);
  expect(again.stderr).toContain('--force');
  return { cert: path.join(dir, 'head.pem'), key: path.join(dir, 'head-key.pem'), ca: path.join(dir, 'ca.pem'), dir };
}

describe('a head serving HTTPS', () => {
  it('serves the CLI and an agent on another port that trust its CA, and refuses those that do not', async () => {
    const tls = await certs();
    const head = await startHead({ numCpus: 1, tls });
    expect(head.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    // The embedded agent trusts its own head's certificate.
    expect((await head.client.nodes()).filter((n) => n.state === 'ALIVE')).toHaveLength(1);

    const agent = await startAgent(head, { name: 'tls-agent', numCpus: 1, args: ['--resources', '{"remote": 1}'] });
    const dir = workingDir({ 'main.py': 'print("over https")\n' });
    const ok = await runCli(['job', 'submit', '--entrypoint-resources', '{"remote": 1}', '--working-dir', dir, '--', 'python3', 'main.py'], { env: head.env });
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toContain('over https');
    expect(agent.output()).not.toMatch(/error/i);

    // Without the CA: a clear message and exit 76, at once (no retries).
    const noCa = { ...head.env, RAYSUB_CA: '' };
    const refused = await runCli(['job', 'list'], { env: noCa });
    expect(refused.code).toBe(76);
    expect(refused.stderr).toMatch(/cannot verify the certificate of the head at https:\/\/127\.0\.0\.1:\d+ .*--ca FILE or RAYSUB_CA/);
    expect(refused.stderr).not.toMatch(/retrying|at .*\.js:\d+/);

    // An agent without the CA stops with the same message instead of retrying forever.
    const lone = spawnCli(['start', '--address', head.url, '--node-name', 'no-ca', '--work-dir', tempDir()], { env: { RAYSUB_TOKEN: head.token } });
    const res = await lone.result;
    expect(res.code).toBe(76);
    expect(res.stderr).toContain('cannot verify the certificate');

    // Plain HTTP to the HTTPS port, and https:// to a plain head: told, not reset.
    const plain = await runCli(['job', 'list', '--address', head.url.replace('https:', 'http:')], { env: head.env });
    expect([plain.code, plain.stderr.trim()]).toEqual([76, 'raysub: error: this head serves HTTPS: use an https:// address']);
    const plainHead = await startHead({ numCpus: 0, localAgent: false });
    const mismatch = await runCli(['job', 'list', '--address', plainHead.url.replace('http:', 'https:')], { env: { ...plainHead.env, RAYSUB_ADDRESS: '' } });
    expect(mismatch.code).toBe(76);
    expect(mismatch.stderr).toContain('does not speak TLS');
  });

  it("serves Ray's `ray job submit` (logs over WSS) with --verify CA, which fails without it", async (ctx) => {
    if (!fs.existsSync(RAY)) {
      console.log(`skipped: Ray's CLI is not installed at ${RAY} (test/ray-compat.test.ts installs it)`);
      return ctx.skip();
    }
    const tls = await certs();
    const head = await startHead({ numCpus: 1, tls });
    const env = { RAY_JOB_HEADERS: JSON.stringify({ Authorization: `Bearer ${head.token}` }), RAY_ADDRESS: '' };
    const dir = workingDir({ 'main.py': 'print("ray over https")\n' });
    const submit = await run(RAY, ['job', 'submit', '--address', head.url, '--verify', tls.ca, '--submission-id', 'ray-tls', '--working-dir', dir, '--', 'python3', 'main.py'], env);
    expect(submit.out).toContain('ray over https');
    expect(submit.out).toContain("Job 'ray-tls' succeeded");
    expect(submit.code).toBe(0);

    const untrusted = await run(RAY, ['job', 'list', '--address', head.url], env);
    expect(untrusted.code).not.toBe(0);
    expect(untrusted.out).toMatch(/CERTIFICATE_VERIFY_FAILED|SSLError/);
    await waitFor(async () => (await head.client.getJob('ray-tls')).status === 'SUCCEEDED', { what: 'the job to be recorded' });
  });
});
