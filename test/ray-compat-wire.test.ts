/**
 * What Ray 2.58's own job clients send and read, to the letter: JobDetails and version keys,
 * metadata and runtime_env as given, Ray's error_type, message and exit codes, the phrases scripts
 * match, 401/403, a tail of an unknown job refused before the upgrade, start_time at submission.
 * Ray is installed into a virtualenv from this machine's pip configuration; when it cannot be,
 * the tests say so and skip.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { startHead } from './helpers/cluster.js';
import { rayCli, rayEnv, runRayScript } from './helpers/rayClient.js';
import { ensureRayVenv, run } from './helpers/rayVenv.js';

let skipReason: string | null = null;

beforeAll(async () => {
  skipReason = await ensureRayVenv();
  if (skipReason) console.log(`ray-compat-wire tests skipped: ${skipReason}`);
}, 600_000);

/** Ray 2.58's JobDetails keys (pydantic_models.py), and raysub's one addition. */
const RAY_JOB_KEYS = [
  'driver_agent_http_address', 'driver_exit_code', 'driver_info', 'driver_node_id', 'end_time', 'entrypoint', 'error_type', 'job_id',
  'message', 'metadata', 'raysub', 'runtime_env', 'start_time', 'status', 'submission_id', 'type',
];

describe("Ray's job clients read what a Ray head would answer", () => {
  it('JobDetails and version keys, metadata and runtime_env exactly as given, Ray outcomes', async (ctx) => {
    if (skipReason) return ctx.skip();
    const head = await startHead({ numCpus: 2 });
    const out = await runRayScript<Record<string, unknown>>(
      head,
      `
import requests
h = {"Authorization": "Bearer " + sys.argv[2]}
out["version_keys"] = sorted(requests.get(sys.argv[1] + "/api/version", headers=h).json().keys())
ok = c.submit_job(entrypoint="python3 -c \\"print('fine')\\"", submission_id="wire-ok", metadata={"team": "ml", "run": "7"},
                  runtime_env={"env_vars": {"X": "1"}, "config": {"setup_timeout_seconds": 60}})
info = wait_end(ok)
raw = requests.get(sys.argv[1] + "/api/jobs/wire-ok", headers=h).json()
out["keys"] = sorted(raw.keys())
out["ok"] = {k: raw[k] for k in ("status", "message", "error_type", "driver_exit_code", "metadata", "runtime_env", "type", "job_id", "driver_info")}
out["ok_node"] = [raw["driver_node_id"], raw["driver_agent_http_address"]]
out["ok_times"] = [raw["start_time"], raw["end_time"], raw["raysub"]["created_at"], raw["raysub"]["started_at"]]
out["sdk_metadata"] = info.metadata
out["job_sees"] = None
sees = c.submit_job(entrypoint="python3 -c \\"import os; print(os.environ['RAY_JOB_CONFIG_JSON_ENV_VAR'])\\"", submission_id="wire-sees", metadata={"team": "ml"})
wait_end(sees)
out["job_sees"] = json.loads(c.get_job_logs(sees).strip().splitlines()[-1])["metadata"]
bare = requests.post(sys.argv[1] + "/api/jobs/", headers=h, json={"entrypoint": "true", "submission_id": "wire-bare"}).json()
wait_end("wire-bare")
raw = requests.get(sys.argv[1] + "/api/jobs/wire-bare", headers=h).json()
out["bare"] = [raw["metadata"], raw["runtime_env"]]
fails = c.submit_job(entrypoint="python3 -c \\"print('about to fail'); import sys; sys.exit(3)\\"", submission_id="wire-3")
info = wait_end(fails)
out["failed"] = [info.status.value, info.error_type, info.driver_exit_code, info.message]
raw = requests.get(sys.argv[1] + "/api/jobs/wire-3", headers=h).json()["raysub"]
out["failed_raysub"] = [raw["error_type"], raw["message"]]
import tempfile, os
d = tempfile.mkdtemp()
with open(os.path.join(d, "kill.py"), "w") as f:
    f.write("import os, signal\\nos.kill(os.getpid(), signal.SIGKILL)\\n")
killed = c.submit_job(entrypoint="python3 kill.py", submission_id="wire-9", runtime_env={"working_dir": d})
info = wait_end(killed)
out["killed"] = [info.error_type, info.driver_exit_code, info.message]
sleeper = c.submit_job(entrypoint="sleep 60", submission_id="wire-stop")
wait_status(sleeper, JobStatus.RUNNING)
c.stop_job(sleeper)
info = wait_end(sleeper)
out["stopped"] = [info.status.value, info.error_type, info.driver_exit_code, info.message]
`,
    );
    expect(out.version_keys).toEqual(['ray_commit', 'ray_version', 'raysub', 'session_name', 'version']);
    expect(out.keys).toEqual(RAY_JOB_KEYS);
    expect(out.ok).toEqual({
      status: 'SUCCEEDED',
      message: 'Job finished successfully.',
      error_type: null,
      driver_exit_code: 0,
      metadata: { team: 'ml', run: '7' },
      // As Ray's client sent it: its config filled in by the client.
      runtime_env: { env_vars: { X: '1' }, config: { setup_timeout_seconds: 60, eager_install: true, log_files: [] } },
      type: 'SUBMISSION',
      job_id: null,
      driver_info: null,
    });
    const [nodeId, agentAddress] = out.ok_node as [string, string | null];
    expect(nodeId).toMatch(/^[0-9a-f]{56}$/);
    if (agentAddress !== null) expect(agentAddress).toMatch(/^http:\/\/[0-9.]+:\d+$/);
    const [start, end, created, started] = out.ok_times as number[];
    expect(start).toBe(created);
    expect(started).toBeGreaterThanOrEqual(start!);
    expect(end).toBeGreaterThanOrEqual(started!);
    expect(out.sdk_metadata).toEqual({ team: 'ml', run: '7' });
    // The job sees Ray's defaults under what it set; the stored metadata has none of them.
    expect(out.job_sees).toEqual({ job_submission_id: 'wire-sees', job_name: 'wire-sees', team: 'ml' });
    expect(out.bare).toEqual([null, null]);
    expect(out.failed).toEqual([
      'FAILED',
      'JOB_ENTRYPOINT_COMMAND_ERROR',
      3,
      // Ray's tail of the driver's log holds its first line too.
      'Job entrypoint command failed with exit code 3, last available logs (truncated to 20,000 chars):\n' +
        `Running entrypoint for job wire-3: python3 -c "print('about to fail'); import sys; sys.exit(3)"\nabout to fail`,
    ]);
    expect(out.failed_raysub).toEqual(['ENTRYPOINT_FAILED', 'job failed: exited with code 3; last output:\nabout to fail']);
    expect(out.killed).toEqual([
      'JOB_ENTRYPOINT_COMMAND_ERROR',
      -9,
      'Job entrypoint command failed with exit code -9, last available logs (truncated to 20,000 chars):\nRunning entrypoint for job wire-9: python3 kill.py',
    ]);
    expect(out.stopped).toEqual(['STOPPED', null, null, 'Job was intentionally stopped.']);
  });

  it("Ray's phrases in errors, 401 and 403, an unknown job's tail refused, start_time while pending", async (ctx) => {
    if (skipReason) return ctx.skip();
    const head = await startHead({ numCpus: 1 });
    const out = await runRayScript<Record<string, string | boolean | number | null>>(
      head,
      `
from ray.exceptions import AuthenticationError
def error_of(fn):
    try:
        fn()
    except Exception as e:
        return f"{type(e).__name__}: {e}"
    return None
out["missing"] = error_of(lambda: c.get_job_info("no-such-job"))
out["stop_missing"] = error_of(lambda: c.stop_job("no-such-job"))
async def tail_missing():
    async for _ in c.tail_job_logs("no-such-job"):
        pass
out["tail_missing"] = error_of(lambda: asyncio.run(tail_missing()))
blocker = c.submit_job(entrypoint="sleep 60", submission_id="blocker", entrypoint_num_cpus=1)
wait_status(blocker, JobStatus.RUNNING)
before = int(time.time() * 1000)
waiting = c.submit_job(entrypoint="true", submission_id="waiting", entrypoint_num_cpus=1)
info = c.get_job_info(waiting)
out["pending_status"] = info.status.value
out["pending_start"] = info.start_time - before
out["pending_message"] = info.message
out["duplicate"] = error_of(lambda: c.submit_job(entrypoint="false", submission_id="waiting"))
out["delete_running"] = error_of(lambda: c.delete_job("blocker"))
for jid in (waiting, blocker):
    c.stop_job(jid)
    wait_end(jid)
out["wrong_token"] = error_of(lambda: JobSubmissionClient(sys.argv[1], headers={"Authorization": "Bearer not-a-token"}).list_jobs())
out["no_token"] = error_of(lambda: JobSubmissionClient(sys.argv[1]).list_jobs())
`,
    );
    expect(out.missing).toMatch(/^RuntimeError: Request failed with status code 404: .*Job no-such-job does not exist/);
    expect(out.stop_missing).toMatch(/status code 404: .*Job no-such-job does not exist/);
    // 404 before the upgrade: Ray's client raises instead of tailing nothing.
    expect(out.tail_missing).toMatch(/404/);
    expect(out.pending_status).toBe('PENDING');
    // start_time is the submission time (within the script's own clock reading and the answer).
    expect(out.pending_start).toBeGreaterThanOrEqual(-50);
    expect(out.pending_start).toBeLessThan(5000);
    expect(out.pending_message).toMatch(/^Job has not started yet\. It may be waiting for resources \(CPUs, GPUs, memory, custom resources\) to become available\. \(.+\)$/);
    expect(out.duplicate).toMatch(/Job with submission_id waiting already exists\. Please use a different submission_id\./);
    expect(out.delete_running).toMatch(/Attempted to delete job 'blocker', but it is in a non-terminal state RUNNING\./);
    expect(out.wrong_token).toMatch(/^AuthenticationError: Authentication failed: .*Invalid authentication token/);
    expect(out.no_token).toMatch(/^AuthenticationError: Authentication required: .*Missing authentication token/);

    const cli = await run(rayCli, ['job', 'list', '--address', head.url], rayEnv(head, { RAY_JOB_HEADERS: JSON.stringify({ Authorization: 'Bearer wrong' }) }));
    expect(cli.code).not.toBe(0);
    expect(cli.out).toContain('Invalid authentication token');
  });
});
