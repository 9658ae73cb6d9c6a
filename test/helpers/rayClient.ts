/**
 * Ray 2.58's own job clients pointed at a raysub head: a Python script run with Ray's
 * JobSubmissionClient (it prints `RESULT=<json>` as its last word), and the `ray` CLI.
 */
import path from 'node:path';
import { expect } from 'vitest';
import type { TestHead } from './cluster.js';
import { RAY_VENV, run } from './rayVenv.js';

export const rayCli = path.join(RAY_VENV, 'bin', 'ray');

/** What Ray's clients are given to reach `head`: its token in RAY_JOB_HEADERS, no RAY_ADDRESS. */
export function rayEnv(head: TestHead, extra: Record<string, string> = {}): Record<string, string> {
  return { RAY_JOB_HEADERS: JSON.stringify({ Authorization: `Bearer ${head.token}` }), RAY_ADDRESS: '', ...extra };
}

/** Common start of every script: `c` is a JobSubmissionClient for the head, `out` what RESULT holds. */
const PRELUDE = `
import asyncio, json, sys, time
from ray.job_submission import JobSubmissionClient, JobStatus
c = JobSubmissionClient(sys.argv[1], headers={"Authorization": "Bearer " + sys.argv[2]})
out = {}
def wait_end(jid, timeout=120):
    deadline = time.time() + timeout
    while c.get_job_status(jid) not in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED):
        if time.time() > deadline:
            raise RuntimeError(f"job {jid} did not end within {timeout}s")
        time.sleep(0.1)
    return c.get_job_info(jid)
def wait_status(jid, status, timeout=60):
    deadline = time.time() + timeout
    while c.get_job_status(jid) != status:
        if time.time() > deadline:
            raise RuntimeError(f"job {jid} never became {status}")
        time.sleep(0.05)
async def _tail(jid):
    return "".join([chunk async for chunk in c.tail_job_logs(jid)])
def tail(jid):
    return asyncio.run(_tail(jid))
`;

/** Run `body` (Python, after the prelude) against the head; returns what it put in `out`. */
export async function runRayScript<T = Record<string, unknown>>(head: TestHead, body: string, env: Record<string, string> = {}, timeoutMs = 240_000): Promise<T> {
  const res = await run(path.join(RAY_VENV, 'bin', 'python'), ['-c', `${PRELUDE}\n${body}\nprint("RESULT=" + json.dumps(out))\n`, head.url, head.token], env, timeoutMs);
  expect(res.code, res.out).toBe(0);
  const line = res.out.split('\n').find((l) => l.startsWith('RESULT='));
  if (!line) throw new Error(`the script printed no result:\n${res.out}`);
  return JSON.parse(line.slice('RESULT='.length)) as T;
}
