/**
 * Remote working_dir and py_modules URIs, as Ray's runtime envs take them: archives the agent
 * fetches over http (served here on loopback), unpacked as Ray does (one top-level directory is
 * the root) with the same checks as uploaded packages, fetched once per node, bounded in size and
 * pinned by checksum when the URI says so; s3:// fails the setup clearly, as on a Ray node
 * without the cloud's SDK. Through Ray 2.58's own CLI and SDK.
 */
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { runCli, startHead, tempDir } from './helpers/cluster.js';
import { writeArchive } from './helpers/archives.js';
import { buildWheel } from './helpers/runtimeEnvFixtures.js';
import { rayCli, rayEnv, runRayScript } from './helpers/rayClient.js';
import { ensureRayVenv, run } from './helpers/rayVenv.js';

let skipReason: string | null = null;

beforeAll(async () => {
  skipReason = await ensureRayVenv();
  if (skipReason) console.log(`ray-compat-remote tests skipped: ${skipReason}`);
}, 600_000);

interface Served {
  base: string;
  /** Requests seen, by path. */
  hits: Map<string, number>;
}

/**
 * Serve `files` on 127.0.0.1; a file whose name starts with `chunked-` is sent without a length,
 * one whose name starts with `private-` only to user `someone`, password `hunter2`.
 */
async function serve(files: Record<string, Buffer>): Promise<Served> {
  const hits = new Map<string, number>();
  const server = http.createServer((req, res) => {
    const p = new URL(req.url ?? '/', 'http://x').pathname;
    hits.set(p, (hits.get(p) ?? 0) + 1);
    const body = files[p.slice(1)];
    if (p.startsWith('/private-') && req.headers.authorization !== `Basic ${Buffer.from('someone:hunter2').toString('base64')}`) {
      res.writeHead(401).end('who are you');
      return;
    }
    if (!body) {
      res.writeHead(404).end('no such file');
      return;
    }
    if (p.startsWith('/chunked-')) {
      res.writeHead(200, { 'content-type': 'application/zip' });
      for (let off = 0; off < body.length; off += 64 * 1024) res.write(body.subarray(off, off + 64 * 1024));
      res.end();
    } else res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length }).end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  onTestFinished(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, hits };
}

function archives(): Record<string, Buffer> {
  const dir = tempDir('raysub-remote-');
  const read = (name: string, specs: Parameters<typeof writeArchive>[1]): Buffer => fs.readFileSync(writeArchive(path.join(dir, name), specs));
  const repo = read('repo.zip', [
    { name: 'proj-main/', type: 'dir' },
    { name: 'proj-main/main.py', type: 'file', data: 'import helper, remote_mod\nprint("remote working dir ran:", helper.WORD, remote_mod.VALUE)\n' },
    { name: 'proj-main/helper.py', type: 'file', data: 'WORD = "hello"\n' },
  ]);
  const mods = read('mods.tar.gz', [
    { name: 'pkg-1.0/remote_mod/__init__.py', type: 'file', data: 'VALUE = 42\n' },
  ]);
  const evil = read('evil.zip', [{ name: '../escaped.py', type: 'file', data: 'print("out")\n' }]);
  // 3 MiB of random bytes, stored: the archive is as large as its content.
  const bigFile = path.join(dir, 'big.zip');
  execFileSync('python3', ['-c', 'import os, sys, zipfile\nwith zipfile.ZipFile(sys.argv[1], "w") as z:\n    z.writestr("noise.bin", os.urandom(3 << 20))', bigFile]);
  const big = fs.readFileSync(bigFile);
  const wheel = fs.readFileSync(buildWheel(path.join(dir, 'wheels'), 'remotewheel', '1.0', 'remotewheel', 'WHO = "a wheel"\n'));
  return { 'remotewheel-1.0-py3-none-any.whl': wheel, 'private-repo.zip': repo, 'repo.zip': repo, 'mods.tar.gz': mods, 'evil.zip': evil, 'chunked-big.zip': big, 'big.zip': big };
}

const sha256 = (b: Buffer): string => crypto.createHash('sha256').update(b).digest('hex');

describe('remote package URIs', () => {
  it('runs a working_dir served over http through `ray job submit`, with py_modules from another archive, each fetched once', async (ctx) => {
    if (skipReason) return ctx.skip();
    const files = archives();
    const web = await serve(files);
    const head = await startHead({ numCpus: 2 });
    const rt = JSON.stringify({ py_modules: [`${web.base}/mods.tar.gz`] });
    for (const id of ['remote-1', 'remote-2']) {
      const res = await run(rayCli, ['job', 'submit', '--address', head.url, '--submission-id', id, '--working-dir', `${web.base}/repo.zip`, '--runtime-env-json', rt, '--', 'python3', 'main.py'], rayEnv(head), 180_000);
      expect(res.code, res.out).toBe(0);
      expect(res.out).toContain('remote working dir ran: hello 42');
      expect(res.out).toContain(`Job '${id}' succeeded`);
    }
    // The second job used the agent's cache.
    expect(Object.fromEntries(web.hits)).toEqual({ '/repo.zip': 1, '/mods.tar.gz': 1 });
    // raysub's CLI passes a URI on as it is.
    const cli = await runCli(['job', 'submit', '--working-dir', `${web.base}/repo.zip`, '--runtime-env-json', rt, '--', 'python3', 'main.py'], { env: head.env });
    expect(cli.code, cli.stderr).toBe(0);
    expect(cli.stdout).toContain('remote working dir ran: hello 42');

    // Pinned by checksum (raysub's #sha256= fragment): the right one runs, a wrong one fails the setup.
    const good = `${web.base}/repo.zip#sha256=${sha256(files['repo.zip'] as Buffer)}`;
    const bad = `${web.base}/repo.zip#sha256=${'0'.repeat(64)}`;
    const out = await runRayScript<Record<string, [string, string | null, string]>>(
      head,
      `
for name, wd in [("pinned", ${JSON.stringify(good)}), ("mispinned", ${JSON.stringify(bad)})]:
    jid = c.submit_job(entrypoint="python3 -c 'import helper; print(helper.WORD)'", submission_id=name, runtime_env={"working_dir": wd})
    info = wait_end(jid)
    out[name] = [info.status.value, info.error_type, c.get_job_logs(jid) if info.status.value == "SUCCEEDED" else info.message]
jid = c.submit_job(entrypoint="python3 -c 'import remotewheel; print(\\"from\\", remotewheel.WHO)'", submission_id="wheel", runtime_env={"py_modules": ["${web.base}/remotewheel-1.0-py3-none-any.whl"]})
info = wait_end(jid)
out["wheel"] = [info.status.value, info.error_type, c.get_job_logs(jid) if info.status.value == "SUCCEEDED" else info.message]
`,
    );
    // A remote wheel in py_modules is installed, as Ray does.
    expect(out.wheel?.[0], out.wheel?.[2]).toBe('SUCCEEDED');
    expect(out.wheel?.[2]).toContain('from a wheel');
    expect(out.pinned).toEqual(['SUCCEEDED', null, expect.stringContaining('hello')]);
    expect(out.mispinned?.slice(0, 2)).toEqual(['FAILED', 'RUNTIME_ENV_SETUP_FAILURE']);
    expect(out.mispinned?.[2]).toMatch(/its SHA-256 is [0-9a-f]{64}, not 0{64}/);
    const job = await head.client.getJob('mispinned');
    expect(job.raysub.error_type).toBe('RUNTIME_ENV_SETUP_FAILED');
    // The job sees the runtime env exactly as given.
    expect(job.runtime_env).toEqual({ working_dir: bad });
  });

  it('refuses what it must, clearly: too large, unsafe, s3, a wrong extension, file://, and keeps secrets in URLs out of messages', async (ctx) => {
    if (skipReason) return ctx.skip();
    const web = await serve(archives());
    const head = await startHead({ numCpus: 2, env: { RAYSUB_MAX_PACKAGE_BYTES: '1M' } });
    const out = await runRayScript<Record<string, [string, string | null, string]>>(
      head,
      `
cases = {
    "big": "${web.base}/big.zip",
    "chunked": "${web.base}/chunked-big.zip",
    "evil": "${web.base}/evil.zip",
    "missing": "http://someone:hunter2@${web.base.slice('http://'.length)}/missing.zip?token=sekrit",
    "s3": "s3://some-bucket/code.zip",
    "private": "http://someone:hunter2@${web.base.slice('http://'.length)}/private-repo.zip",
}
for name, wd in cases.items():
    jid = c.submit_job(entrypoint="true", submission_id=name, runtime_env={"working_dir": wd})
    info = wait_end(jid)
    out[name] = [info.status.value, info.error_type, info.message + c.get_job_logs(jid)]
`,
    );
    // A user and password in the URL are sent as Basic authorization.
    expect(out.private?.[0], out.private?.[2]).toBe('SUCCEEDED');
    for (const name of ['big', 'chunked', 'evil', 'missing', 's3']) expect(out[name]?.slice(0, 2), name).toEqual(['FAILED', 'RUNTIME_ENV_SETUP_FAILURE']);
    expect(out.big?.[2]).toMatch(/above the limit of 1\.0 MiB \(--max-package-size\)/);
    expect(out.chunked?.[2]).toMatch(/larger than the limit of 1\.0 MiB \(--max-package-size\)/);
    expect(out.evil?.[2]).toMatch(/escaped\.py|\.\./);
    expect(out.missing?.[2]).toMatch(/HTTP 404/);
    expect(out.missing?.[2]).not.toMatch(/hunter2|sekrit/);
    expect(out.s3?.[2]).toMatch(/s3:\/\/ packages are not fetched by raysub's agents/);
    // Only the private archive is unpacked on the node: nothing, not even half, of the refused ones.
    expect(fs.readdirSync(path.join(head.dataDir, 'agent', 'unpacked')).filter((n) => !n.startsWith('.trash-'))).toHaveLength(1);

    // Refused at submission, with the reason: a remote file that is not an archive, a wheel as a working dir, file://.
    for (const [uri, why] of [
      [`${web.base}/notes.txt`, /a remote package must be a \.zip, \.tar\.gz or \.tgz archive/],
      [`${web.base}/thing-1.0-py3-none-any.whl`, /a wheel is taken only in py_modules/],
      ['file:///etc', /file:\/\/ is not taken/],
      [`${web.base}/repo.zip#md5=abc`, /#sha256=<64 hex digits>/],
    ] as const) {
      await expect(head.client.submitJob({ submission_id: `refused-${crypto.randomBytes(3).toString('hex')}`, entrypoint: 'true', runtime_env: { working_dir: uri } }), uri).rejects.toMatchObject({ code: 'INVALID_RUNTIME_ENV', message: expect.stringMatching(why) as unknown });
    }
    await expect(head.client.submitJob({ submission_id: 'bad-wheel', entrypoint: 'true', runtime_env: { py_modules: [`${web.base}/not%2Fa%20wheel.whl`] } })).rejects.toMatchObject({
      code: 'INVALID_RUNTIME_ENV',
      message: expect.stringMatching(/not a valid wheel name/) as unknown,
    });
  });
});
