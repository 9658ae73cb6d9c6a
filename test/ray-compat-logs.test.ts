/**
 * A job's log as Ray's clients read it: stdout and stderr in the order the job wrote them (one
 * pipe), Ray's `Running entrypoint for job ...` first line, raysub's own lines kept out of Ray's
 * view and in raysub's. Through Ray 2.58's SDK and CLI, and raysub's CLI.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { runCli, startHead } from './helpers/cluster.js';
import { rayCli, rayEnv, runRayScript } from './helpers/rayClient.js';
import { ensureRayVenv, run } from './helpers/rayVenv.js';

let skipReason: string | null = null;

beforeAll(async () => {
  skipReason = await ensureRayVenv();
  if (skipReason) console.log(`ray-compat-logs tests skipped: ${skipReason}`);
}, 600_000);

const LINES = 100;
/** Lines written alternately to stdout and stderr, each at once (PYTHONUNBUFFERED is set for every job). */
const INTERLEAVE = `import sys\\nfor i in range(${LINES}):\\n    print(f"out {i}")\\n    print(f"err {i}", file=sys.stderr)\\n`;
const expected = Array.from({ length: LINES }, (_, i) => `out ${i}\nerr ${i}\n`).join('');

describe("a job's log, in order, as Ray writes it", () => {
  it('interleaved stdout and stderr come back in order in 20 of 20 runs', async (ctx) => {
    if (skipReason) return ctx.skip();
    const head = await startHead({ numCpus: 2 });
    const out = await runRayScript<{ logs: Record<string, string>; tailed: string; entrypoint: string }>(
      head,
      `
import os, tempfile
d = tempfile.mkdtemp()
with open(os.path.join(d, "interleave.py"), "w") as f:
    f.write('''${INTERLEAVE}''')
ids = [c.submit_job(entrypoint="python3 interleave.py", submission_id=f"order-{i}", runtime_env={"working_dir": d}, entrypoint_num_cpus=0) for i in range(20)]
out["tailed"] = tail(ids[0])
out["logs"] = {}
for jid in ids:
    info = wait_end(jid)
    if info.status != JobStatus.SUCCEEDED:
        raise RuntimeError(f"{jid} ended {info.status}: {info.message}")
    out["logs"][jid] = c.get_job_logs(jid)
out["entrypoint"] = c.get_job_info(ids[0]).entrypoint
`,
    );
    const inOrder = Object.entries(out.logs).filter(([id, logs]) => logs === `Running entrypoint for job ${id}: ${out.entrypoint}\n${expected}`);
    console.log(`interleaved stdout/stderr in order: ${inOrder.length} of ${Object.keys(out.logs).length} runs`);
    expect(Object.keys(out.logs)).toHaveLength(20);
    expect(inOrder.map(([id]) => id)).toEqual(Object.keys(out.logs));
    expect(out.tailed).toBe(`Running entrypoint for job order-0: python3 interleave.py\n${expected}`);

    // Ray's CLI and raysub's print it in the same order (raysub's on stdout: one stream).
    const ray = await run(rayCli, ['job', 'logs', '--address', head.url, 'order-1'], rayEnv(head));
    expect(ray.stdout).toContain(`Running entrypoint for job order-1: python3 interleave.py\n${expected}`);
    const ours = await runCli(['job', 'logs', 'order-1'], { env: head.env });
    expect(ours).toMatchObject({ code: 0, stdout: expected });
  });

  it("keeps raysub's own lines out of Ray's view and in raysub's, and stderr apart when the job asks", async (ctx) => {
    if (skipReason) return ctx.skip();
    const head = await startHead({ numCpus: 2 });
    // The first attempt fails: raysub's retry notice is one of its own lines.
    const flaky = 'echo "attempt $RAYSUB_ATTEMPT"; [ "$RAYSUB_ATTEMPT" -ge 2 ]';
    await head.client.submitJob({ submission_id: 'retried', entrypoint: flaky, raysub: { max_retries: 1, retry_backoff_s: 0.1 } });
    const job = await head.client.waitForJob('retried', { timeoutMs: 60_000 });
    expect(job.status).toBe('SUCCEEDED');
    const out = await runRayScript<{ logs: string; tailed: string }>(head, `out["logs"] = c.get_job_logs("retried")\nout["tailed"] = tail("retried")`);
    const rayView = `Running entrypoint for job retried: ${flaky}\nattempt 1\nattempt 2\n`;
    expect(out.logs).toBe(rayView);
    expect(out.tailed).toBe(rayView);
    const raysubView = await head.client.getLogs('retried');
    expect(raysubView).toMatch(/^attempt 1\n\[raysub\] attempt 1 failed \(ENTRYPOINT_FAILED: exited with code 1\); retrying in 0\.1s .*\n\[raysub\] attempt 2 on .*\nattempt 2\n$/);

    // runtime_env.sandbox.separate_stderr: stderr is a stream of its own again (raysub's CLI
    // colours it on a terminal), printed with the rest on stdout.
    const rt = JSON.stringify({ sandbox: { separate_stderr: true } });
    const apart = await runCli(['job', 'submit', '--submission-id', 'apart', '--runtime-env-json', rt, '--', 'python3', '-c', 'import sys; print("to stdout"); print("to stderr", file=sys.stderr)'], { env: head.env });
    expect(apart.code, apart.stderr).toBe(0);
    expect(apart.stdout.split('\n').sort()).toEqual(['', 'to stderr', 'to stdout']);
    expect(apart.stderr).not.toContain('to stderr');
    const streams = await runCli(['job', 'logs', 'apart', '--json'], { env: head.env });
    const pieces = streams.stdout.trimEnd().split('\n').map((l) => JSON.parse(l) as { stream: string; data: string });
    expect(pieces.filter((p) => p.stream === 'stderr').map((p) => p.data).join('')).toBe('to stderr\n');
  });
});
