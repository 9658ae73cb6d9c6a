/**
 * Ray's own job clients (the `ray job` CLI and JobSubmissionClient, Ray 2.58) against a raysub head.
 * Ray is installed into a virtualenv from this machine's pip configuration; when it cannot be
 * installed, the tests say so and skip.
 */
import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { startHead, waitFor, workingDir } from './helpers/cluster.js';
import { RAY_VENV, ensureRayVenv, run } from './helpers/rayVenv.js';

const VENV = RAY_VENV;
let skipReason: string | null = null;

beforeAll(async () => {
  skipReason = await ensureRayVenv();
  if (skipReason) console.log(`ray-compat tests skipped: ${skipReason}`);
}, 600_000);

describe("Ray's job clients against a raysub head", () => {
  it('`ray job submit|status|logs|list|stop|delete` work unchanged', async (ctx) => {
    if (skipReason) return ctx.skip();
    const head = await startHead({ numCpus: 2 });
    const env = { RAY_JOB_HEADERS: JSON.stringify({ Authorization: `Bearer ${head.token}` }), RAY_ADDRESS: '' };
    const ray = path.join(VENV, 'bin', 'ray');
    const dir = workingDir({ 'main.py': 'import os\nprint("ray client says hi", os.environ["RAY_JOB_SUBMISSION_ID"])\n' });

    const submit = await run(ray, ['job', 'submit', '--address', head.url, '--submission-id', 'from-ray', '--working-dir', dir, '--', 'python3', 'main.py'], env);
    expect(submit.out).toContain('ray client says hi from-ray');
    expect(submit.out).toContain("Job 'from-ray' succeeded");
    expect(submit.code).toBe(0);
    const pkgs = fs.readdirSync(path.join(head.dataDir, 'packages')).filter((f) => f.endsWith('.zip'));
    expect(pkgs).toHaveLength(1);

    const status = await run(ray, ['job', 'status', '--address', head.url, 'from-ray'], env);
    expect(status.out).toContain("Job 'from-ray' succeeded");
    const logs = await run(ray, ['job', 'logs', '--address', head.url, 'from-ray'], env);
    expect(logs.out).toContain('ray client says hi');

    const failing = await run(ray, ['job', 'submit', '--address', head.url, '--submission-id', 'ray-fails', '--', 'python3', '-c', 'import sys; sys.exit(4)'], env);
    expect(failing.code).toBe(1);
    expect(failing.out).toMatch(/failed/i);

    const sleeper = await run(ray, ['job', 'submit', '--address', head.url, '--no-wait', '--submission-id', 'ray-sleeps', '--', 'sleep', '60'], env);
    expect(sleeper.code).toBe(0);
    await waitFor(async () => (await head.client.getJob('ray-sleeps')).status === 'RUNNING');
    const stop = await run(ray, ['job', 'stop', '--address', head.url, 'ray-sleeps'], env);
    expect(stop.code).toBe(0);
    expect((await head.client.getJob('ray-sleeps')).status).toBe('STOPPED');

    const list = await run(ray, ['job', 'list', '--address', head.url], env);
    for (const id of ['from-ray', 'ray-fails', 'ray-sleeps']) expect(list.out).toContain(id);

    const del = await run(ray, ['job', 'delete', '--address', head.url, 'from-ray'], env);
    expect(del.code).toBe(0);
    expect((await head.client.listJobs()).jobs.map((j) => j.submission_id)).not.toContain('from-ray');

    const noToken = await run(ray, ['job', 'list', '--address', head.url], { RAY_JOB_HEADERS: '', RAY_ADDRESS: '' });
    expect(noToken.code).not.toBe(0);
  });

  it('`ray job submit --runtime-env-json` with pip installs from the local index (Ray\'s client adds `_ray_commit`)', async (ctx) => {
    if (skipReason) return ctx.skip();
    const head = await startHead({ numCpus: 2, env: { PIP_RETRIES: '0' } });
    const env = { RAY_JOB_HEADERS: JSON.stringify({ Authorization: `Bearer ${head.token}` }), RAY_ADDRESS: '' };
    const ray = path.join(VENV, 'bin', 'ray');
    const rt = JSON.stringify({ pip: ['tabulate'], config: { setup_timeout_seconds: 300 } });
    const code = 'import tabulate; print("tabulated:", tabulate.tabulate([[1, 2]], tablefmt="plain"))';
    const submit = await run(ray, ['job', 'submit', '--address', head.url, '--submission-id', 'ray-pip', '--runtime-env-json', rt, '--', 'python3', '-c', code], env, 300_000);
    expect(submit.code, submit.out).toBe(0);
    expect(submit.out).toContain('tabulated: 1  2');
    expect(submit.out).toContain("Job 'ray-pip' succeeded");
    const job = await head.client.getJob('ray-pip');
    expect(job.runtime_env).toMatchObject({ pip: { packages: ['tabulate'], pip_check: false }, _ray_commit: expect.any(String) as unknown });
  });

  it('JobSubmissionClient submits, tails, lists, stops and deletes', async (ctx) => {
    if (skipReason) return ctx.skip();
    const head = await startHead({ numCpus: 2 });
    const script = `
import asyncio, json, sys, time
from ray.job_submission import JobSubmissionClient, JobStatus
c = JobSubmissionClient(sys.argv[1], headers={"Authorization": "Bearer " + sys.argv[2]})
out = {}
jid = c.submit_job(entrypoint="python3 -c \\"print('line1'); print('line2')\\"", submission_id="sdk-1",
                   metadata={"team": "ml"}, entrypoint_num_cpus=1, entrypoint_memory=10**8)
async def tail():
    return "".join([chunk async for chunk in c.tail_job_logs(jid)])
out["tail"] = asyncio.run(tail())
while c.get_job_status(jid) not in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED):
    time.sleep(0.1)
info = c.get_job_info(jid)
out["status"] = str(info.status.value)
out["metadata"] = info.metadata
out["logs"] = c.get_job_logs(jid)
sid = c.submit_job(entrypoint="sleep 60")
while c.get_job_status(sid) != JobStatus.RUNNING:
    time.sleep(0.1)
out["stopped"] = c.stop_job(sid)
while c.get_job_status(sid) != JobStatus.STOPPED:
    time.sleep(0.1)
out["ids"] = sorted(j.submission_id for j in c.list_jobs())
out["deleted"] = c.delete_job(jid)
print("RESULT=" + json.dumps(out))
`;
    const res = await run(path.join(VENV, 'bin', 'python'), ['-c', script, head.url, head.token], {});
    expect(res.code, res.out).toBe(0);
    const line = res.out.split('\n').find((l) => l.startsWith('RESULT=')) ?? 'RESULT={}';
    const out = JSON.parse(line.slice('RESULT='.length)) as Record<string, unknown>;
    const driverLog = `Running entrypoint for job sdk-1: python3 -c "print('line1'); print('line2')"\nline1\nline2\n`;
    expect(out.tail).toBe(driverLog);
    expect(out.status).toBe('SUCCEEDED');
    expect(out.metadata).toEqual({ team: 'ml' });
    expect(out.logs).toBe(driverLog);
    expect(out.stopped).toBe(true);
    expect(out.ids).toContain('sdk-1');
    expect(out.deleted).toBe(true);
  });

  it("tails a quiet job through the head's pings, and gets the end of a log above the cap", async (ctx) => {
    if (skipReason) return ctx.skip();
    const head = await startHead({ numCpus: 2, env: { RAYSUB_LOG_KEEPALIVE_MS: '200', RAYSUB_RAY_LOGS_MAX_BYTES: '4096' } });
    const script = `
import asyncio, json, sys
from ray.job_submission import JobSubmissionClient
c = JobSubmissionClient(sys.argv[1], headers={"Authorization": "Bearer " + sys.argv[2]})
out = {}
quiet = c.submit_job(entrypoint="python3 -c \\"import time; print('before', flush=True); time.sleep(3); print('after')\\"")
async def tail(jid):
    return "".join([chunk async for chunk in c.tail_job_logs(jid)])
out["tail"] = asyncio.run(tail(quiet))
big = c.submit_job(entrypoint="python3 -c \\"[print(f'line {i:05d}') for i in range(3000)]\\"")
asyncio.run(tail(big))
out["big"] = c.get_job_logs(big)
print("RESULT=" + json.dumps(out))
`;
    const res = await run(path.join(VENV, 'bin', 'python'), ['-c', script, head.url, head.token], {});
    expect(res.code, res.out).toBe(0);
    const line = res.out.split('\n').find((l) => l.startsWith('RESULT=')) ?? 'RESULT={}';
    const out = JSON.parse(line.slice('RESULT='.length)) as { tail: string; big: string };
    // About fifteen pings went by during the quiet three seconds; none of them shows as output.
    expect(out.tail).toMatch(/^Running entrypoint for job raysubmit_\w+: python3 -c .*\nbefore\nafter\n$/);
    const [marker, ...rest] = out.big.split('\n');
    expect(marker).toMatch(/^\[raysub\] this log has 33000 bytes; this answer holds only the last 4096 bytes/);
    expect(rest[0]).toMatch(/^line \d{5}$/);
    expect(out.big.endsWith('line 02999\n')).toBe(true);
    expect(Buffer.byteLength(rest.join('\n'))).toBeLessThanOrEqual(4096);
  });
});
