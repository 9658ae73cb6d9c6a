import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { runCli, startHead, tempDir, waitFor, workingDir, type TestHead } from './helpers/cluster.js';

async function http(head: TestHead, method: 'GET' | 'POST' | 'PUT' | 'DELETE', p: string, body?: string | Buffer, headers: Record<string, string> = {}) {
  const res = await request(head.url + p, {
    method,
    body,
    headers: { authorization: `Bearer ${head.token}`, ...(typeof body === 'string' ? { 'content-type': 'application/json' } : {}), ...headers },
  });
  const text = await res.body.text();
  let json: { error?: { code: string; message: string } } & Record<string, unknown> = {};
  try {
    json = JSON.parse(text) as typeof json;
  } catch {
    // not JSON
  }
  return { status: res.statusCode, json, text };
}

/** Write an archive with python3's tarfile/zipfile, which (unlike our packer) will write hostile entries. */
function evilArchive(dir: string, name: string, script: string): string {
  const file = path.join(dir, name);
  execFileSync('python3', ['-c', script, file]);
  return file;
}

async function stillServing(head: TestHead): Promise<void> {
  const v = await http(head, 'GET', '/api/version');
  expect(v.status).toBe(200);
}

describe('bad input gets a clear error and loses nothing', () => {
  it('rejects malformed requests with stable codes and keeps serving', async () => {
    const head = await startHead({ numCpus: 1, args: ['--max-package-size', '2K'] });

    const malformed = await http(head, 'POST', '/api/jobs/', '{"entrypoint": ');
    expect(malformed.status).toBe(400);
    expect(malformed.json.error?.code).toBe('INVALID_JSON');

    const unknown = await http(head, 'POST', '/api/jobs/', JSON.stringify({ entrypoint: 'true', surprise: 1 }));
    expect(unknown.status).toBe(400);
    expect(unknown.json.error).toMatchObject({ code: 'INVALID_REQUEST' });
    expect(unknown.json.error?.message).toContain('surprise');

    const wrongType = await http(head, 'POST', '/api/jobs/', JSON.stringify({ entrypoint: 'true', entrypoint_num_cpus: 'two' }));
    expect(wrongType.status).toBe(400);
    expect(wrongType.json.error?.message).toContain('entrypoint_num_cpus');

    const missing = await http(head, 'POST', '/api/jobs/', JSON.stringify({ runtime_env: {} }));
    expect(missing.status).toBe(400);
    expect(missing.json.error?.message).toContain('entrypoint');

    const badEnv = await http(head, 'POST', '/api/jobs/', JSON.stringify({ entrypoint: 'true', runtime_env: { conda: 'x' } }));
    expect(badEnv.status).toBe(400);
    expect(badEnv.json.error?.code).toBe('INVALID_RUNTIME_ENV');
    expect(badEnv.json.error?.message).toContain('known fields: working_dir');

    const badId = await http(head, 'POST', '/api/jobs/', JSON.stringify({ entrypoint: 'true', submission_id: '../etc' }));
    expect(badId.status).toBe(400);

    // A job's description is bounded: every listing carries its metadata and runtime_env.
    const before = (await head.client.listJobs()).jobs.length;
    const wide = await http(head, 'POST', '/api/jobs/', JSON.stringify({ entrypoint: 'true', metadata: Object.fromEntries(Array.from({ length: 20_000 }, (_, i) => [`k${i}`, 'value'])) }));
    expect(wide.status).toBe(400);
    expect(wide.json.error).toMatchObject({ code: 'INVALID_REQUEST' });
    expect(wide.json.error?.message).toMatch(/metadata: must hold at most 64 KiB/);
    const fatEnv = await http(head, 'POST', '/api/jobs/', JSON.stringify({ entrypoint: 'true', runtime_env: { env_vars: { BIG: 'x'.repeat(300 * 1024) } } }));
    expect(fatEnv.status).toBe(400);
    expect(fatEnv.json.error?.message).toMatch(/runtime_env: must be at most 256 KiB as JSON/);
    const selectors = await http(head, 'POST', '/api/jobs/', JSON.stringify({ entrypoint: 'true', entrypoint_label_selector: Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`l${i}`, 'v'])) }));
    expect(selectors.status).toBe(400);
    const fits = await http(head, 'POST', '/api/jobs/', JSON.stringify({ entrypoint: 'true', metadata: { note: 'n'.repeat(60 * 1024) } }));
    expect(fits.status, fits.text).toBe(200);
    expect((await head.client.listJobs()).jobs.length).toBe(before + 1);

    const notFound = await http(head, 'GET', '/api/jobs/nope');
    expect(notFound.status).toBe(404);
    expect(notFound.json.error?.code).toBe('JOB_NOT_FOUND');
    expect((await http(head, 'POST', '/api/jobs/nope/stop')).json.error?.code).toBe('JOB_NOT_FOUND');
    expect((await http(head, 'GET', '/api/jobs/nope/logs')).status).toBe(404);

    // Same id and spec returns the same job; a different spec is a conflict.
    const spec = { entrypoint: 'sleep 30', submission_id: 'dup' };
    const first = await http(head, 'POST', '/api/jobs/', JSON.stringify(spec));
    expect(first.status).toBe(200);
    const again = await http(head, 'POST', '/api/jobs/', JSON.stringify(spec));
    expect(again.json).toEqual({ job_id: 'dup', submission_id: 'dup' });
    const conflict = await http(head, 'POST', '/api/jobs/', JSON.stringify({ ...spec, entrypoint: 'sleep 31' }));
    expect(conflict.status).toBe(409);
    expect(conflict.json.error?.code).toBe('JOB_ALREADY_EXISTS');
    expect((await head.client.listJobs()).jobs.filter((j) => j.submission_id === 'dup')).toHaveLength(1);

    await waitFor(async () => (await head.client.getJob('dup')).status === 'RUNNING');
    const delRunning = await http(head, 'DELETE', '/api/jobs/dup');
    expect(delRunning.status).toBe(409);
    expect(delRunning.json.error?.code).toBe('JOB_NOT_TERMINAL');
    const cliDel = await runCli(['job', 'delete', 'dup'], { env: head.env });
    expect(cliDel.code).toBe(65);
    expect(cliDel.stderr.trim().split('\n')).toHaveLength(1);
    expect(cliDel.stderr).toContain('Stop it before deleting it');
    await head.client.stopJob('dup');

    const unroutable = await http(head, 'GET', '/api/nothing-here');
    expect(unroutable.status).toBe(404);
    expect(unroutable.json.error?.code).toBe('NOT_FOUND');
    await stillServing(head);
  });

  it('refuses JSON nested past 100 levels on every route with a body, never with a 500, and keeps serving', async () => {
    const head = await startHead({ numCpus: 1 });
    const nest = (n: number): string => '{"a":'.repeat(n) + '1' + '}'.repeat(n);
    const list = (n: number): string => '['.repeat(n) + ']'.repeat(n);
    const deep = 20_000;
    const bodies: [string, 'POST' | 'PUT', string][] = [
      ['/api/jobs/', 'POST', `{"entrypoint":"echo","runtime_env":{"config":${nest(deep)}}}`],
      ['/api/jobs/', 'POST', `{"entrypoint":"echo","runtime_env":{"env_vars":${list(deep)}}}`],
      ['/api/jobs/', 'POST', `{"entrypoint":"echo","metadata":${nest(deep)}}`],
      ['/api/schedules', 'POST', `{"name":"deep","cron":"* * * * *","job":{"entrypoint":"echo","runtime_env":{"config":${nest(deep)}}}}`],
      ['/api/schedules/deep', 'PUT', `{"cron":"* * * * *","job":{"entrypoint":"echo","runtime_env":{"config":${nest(deep)}}}}`],
      ['/api/agents/register', 'POST', `{"name":"deep","totals":${nest(deep)}}`],
      ['/api/tokens', 'POST', `{"kind":"user","name":${list(deep)}}`],
    ];
    for (const [p, method, body] of bodies) {
      const res = await http(head, method, p, body);
      expect(res.status, `${method} ${p}: ${res.text.slice(0, 200)}`).toBe(400);
      expect(res.json.error?.code).toBe('INVALID_JSON');
      expect(res.json.error?.message).toContain('100 levels');
    }
    // Nesting within the bound (the body, runtime_env, config and 97 more) reaches the route's own checks.
    const shallow = await http(head, 'POST', '/api/jobs/', `{"entrypoint":"echo","runtime_env":{"config":${nest(97)}}}`);
    expect(shallow.status).toBe(400);
    expect(shallow.json.error?.code).toBe('INVALID_RUNTIME_ENV');
    await stillServing(head);
    const jobs = await http(head, 'GET', '/api/jobs/');
    expect(jobs.status).toBe(200);
    expect(jobs.json).toEqual([]);
  });

  it('refuses oversized and hostile packages before storing anything', async () => {
    const head = await startHead({ numCpus: 1, args: ['--max-package-size', '4K'] });
    const packagesDir = path.join(head.dataDir, 'packages');
    const stored = () => fs.readdirSync(packagesDir).filter((f) => !f.startsWith('.'));
    const dir = tempDir();

    const big = Buffer.alloc(10_000, 1);
    const tooLarge = await http(head, 'PUT', '/api/packages/gcs/_ray_pkg_aaaaaaaaaaaaaaaa.zip', big, { 'content-type': 'application/octet-stream' });
    expect(tooLarge.status).toBe(413);
    expect(tooLarge.json.error?.code).toBe('PACKAGE_TOO_LARGE');

    const dotdot = evilArchive(dir, 'dotdot.tar.gz', `import sys, tarfile, io
with tarfile.open(sys.argv[1], 'w:gz') as t:
    data = b'owned'
    info = tarfile.TarInfo('../../escaped.txt'); info.size = len(data); t.addfile(info, io.BytesIO(data))`);
    const absolute = evilArchive(dir, 'abs.zip', `import sys, zipfile
with zipfile.ZipFile(sys.argv[1], 'w') as z:
    z.writestr('/tmp/raysub-absolute-escape.txt', 'owned')`);
    const link = evilArchive(dir, 'link.tar.gz', `import sys, tarfile
with tarfile.open(sys.argv[1], 'w:gz') as t:
    info = tarfile.TarInfo('data'); info.type = tarfile.SYMTYPE; info.linkname = '../../../etc'; t.addfile(info)`);
    const zipLink = evilArchive(dir, 'ziplink.zip', `import sys, zipfile, stat
with zipfile.ZipFile(sys.argv[1], 'w') as z:
    info = zipfile.ZipInfo('shadow'); info.external_attr = (stat.S_IFLNK | 0o777) << 16
    z.writestr(info, '/etc/shadow')`);
    for (const [file, fragment] of [
      [dotdot, '".."'],
      [absolute, 'absolute'],
      [link, 'outside'],
      [zipLink, 'absolute'],
    ] as const) {
      // Named by their content, so that what is refused is the content itself.
      const name = `_raysub_pkg_${crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex')}.${file.endsWith('.zip') ? 'zip' : 'tar.gz'}`;
      const res = await http(head, 'PUT', `/api/packages/gcs/${name}`, fs.readFileSync(file), { 'content-type': 'application/octet-stream' });
      expect(res.status, name).toBe(400);
      expect(res.json.error?.code).toBe('INVALID_PACKAGE');
      expect(res.json.error?.message).toContain(fragment);
    }
    expect(stored()).toEqual([]);
    expect(fs.existsSync(path.join(head.dataDir, 'escaped.txt'))).toBe(false);
    expect(fs.existsSync('/tmp/raysub-absolute-escape.txt')).toBe(false);

    // A raysub package whose content does not match its SHA-256 name is refused too.
    const wd = workingDir({ 'a.txt': 'a' });
    execFileSync('tar', ['czf', path.join(dir, 'ok.tar.gz'), '-C', wd, 'a.txt']);
    const lie = await http(head, 'PUT', `/api/packages/gcs/_raysub_pkg_${'0'.repeat(64)}.tar.gz`, fs.readFileSync(path.join(dir, 'ok.tar.gz')), {
      'content-type': 'application/octet-stream',
    });
    expect(lie.status).toBe(400);
    expect(lie.json.error?.message).toContain('does not match');
    expect(stored()).toEqual([]);

    // The CLI refuses a working dir over the limit before uploading, naming the largest file.
    const large = workingDir({ 'main.py': 'print(1)', 'weights.bin': 'x'.repeat(50_000) });
    const cli = await runCli(['job', 'submit', '--working-dir', large, '--max-package-size', '10K', '--', 'python3', 'main.py'], { env: head.env });
    expect(cli.code).toBe(64);
    expect(cli.stderr).toContain('weights.bin');
    expect(stored()).toEqual([]);

    // A package the head never received cannot be referenced.
    const ghost = await http(head, 'POST', '/api/jobs/', JSON.stringify({ entrypoint: 'true', runtime_env: { working_dir: 'gcs://_ray_pkg_5555555555555555.zip' } }));
    expect(ghost.status).toBe(400);
    expect(ghost.json.error?.code).toBe('INVALID_RUNTIME_ENV');
    await stillServing(head);
  });

  it('fails a job whose entrypoint does not exist, with the shell\'s message in its log', async () => {
    const head = await startHead({ numCpus: 1 });
    const res = await runCli(['job', 'submit', '--submission-id', 'ghost', '--', 'definitely-not-a-command', '--flag'], { env: head.env });
    expect(res.code).toBe(127);
    // The job's stderr is part of its one output stream (docs/logs.md).
    expect(res.stdout).toMatch(/not found/);
    const job = await head.client.getJob('ghost');
    expect(job).toMatchObject({ status: 'FAILED', driver_exit_code: 127, error_type: 'JOB_ENTRYPOINT_COMMAND_ERROR', raysub: { error_type: 'ENTRYPOINT_FAILED' } });
    expect(await head.client.getLogs('ghost')).toMatch(/definitely-not-a-command.*not found/);
  });

  it('requires the token on every endpoint and compares it exactly', async () => {
    const head = await startHead({ numCpus: 1, localAgent: false });
    for (const [method, p] of [
      ['GET', '/api/version'],
      ['GET', '/api/jobs/'],
      ['POST', '/api/jobs/'],
      ['GET', '/api/nodes'],
      ['GET', '/metrics'],
      ['POST', '/api/agents/register'],
      ['PUT', '/api/packages/gcs/_ray_pkg_1234567812345678.zip'],
    ] as const) {
      // No token is 401; a token the head does not know is 403 (as Ray answers them).
      for (const [headers, status, code] of [
        [{}, 401, 'UNAUTHORIZED'],
        [{ authorization: `Bearer ${head.token}x` }, 403, 'INVALID_TOKEN'],
        [{ authorization: 'Bearer ' }, 403, 'INVALID_TOKEN'],
      ] as const) {
        const res = await request(head.url + p, { method, headers });
        expect(res.statusCode, `${method} ${p}`).toBe(status);
        expect(((await res.body.json()) as { error: { code: string } }).error.code).toBe(code);
      }
    }
    const cli = await runCli(['job', 'list'], { env: { ...head.env, RAYSUB_TOKEN: 'wrong' } });
    expect(cli.code).toBe(77);
    expect(cli.stderr).toContain('Invalid authentication token');
    const unreachable = await runCli(['job', 'list'], { env: { RAYSUB_ADDRESS: 'http://127.0.0.1:9', RAYSUB_TOKEN: 'x' } });
    expect(unreachable.code).toBe(69);
    expect(fs.statSync(path.join(head.dataDir, 'token')).mode & 0o777).toBe(0o600);
  });
});
