/**
 * Stopping a job as Ray does: the stop signal (RAY_JOB_STOP_SIGNAL, SIGTERM by default) to every
 * process of the job — not only the shell — then a wait for all of them up to the grace period
 * (RAY_JOB_STOP_WAIT_TIME_S, 3 s by default), then SIGKILL. Through Ray 2.58's own CLI, in a served
 * (reused) sandbox as raysub runs jobs by default, in a sandbox of its own, and without bubblewrap.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { processesWith, startHead, waitFor, workingDir, type TestHead } from './helpers/cluster.js';
import { rayCli, rayEnv } from './helpers/rayClient.js';
import { ensureRayVenv, run } from './helpers/rayVenv.js';

let skipReason: string | null = null;

beforeAll(async () => {
  skipReason = await ensureRayVenv();
  if (skipReason) console.log(`ray-compat-stop tests skipped: ${skipReason}`);
}, 600_000);

/** A handler that needs 2 s to clean up, for SIGTERM and SIGINT, and a marker in its command line. */
const HANDLER = `
import signal, sys, time
name = sys.argv[1]
def on_stop(sig, frame):
    time.sleep(2)
    print(f"cleanup done {name} after {signal.Signals(sig).name}", flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, on_stop)
signal.signal(signal.SIGINT, on_stop)
print(f"ready {name}", flush=True)
while True:
    time.sleep(0.1)
`;

/**
 * Submit through `ray job submit --no-wait` a shell running two handlers (the shell dies at once on
 * the signal; the handlers do not), wait until both are ready, stop it with `ray job stop`, and
 * return its log and how long the stop took.
 */
async function submitAndStop(head: TestHead, id: string, envVars: Record<string, string> = {}): Promise<{ logs: string; stopMs: number }> {
  const dir = workingDir({ 'handler.py': HANDLER });
  const marker = `stop-marker-${id}`;
  const rt = JSON.stringify({ env_vars: envVars });
  const script = `python3 handler.py ${marker}-a & python3 handler.py ${marker}-b; wait`;
  const env = rayEnv(head);
  const submit = await run(rayCli, ['job', 'submit', '--address', head.url, '--no-wait', '--submission-id', id, '--working-dir', dir, '--runtime-env-json', rt, '--', 'sh', '-c', script], env);
  expect(submit.code, submit.out).toBe(0);
  await waitFor(async () => {
    const logs = await head.client.getLogs(id);
    return logs.includes(`ready ${marker}-a`) && logs.includes(`ready ${marker}-b`);
  }, { what: 'both handlers to be ready', timeoutMs: 60_000 });
  const started = Date.now();
  const stop = await run(rayCli, ['job', 'stop', '--address', head.url, id], env);
  expect(stop.code, stop.out).toBe(0);
  const job = await head.client.waitForJob(id, { timeoutMs: 30_000 });
  const stopMs = Date.now() - started;
  expect(job.status).toBe('STOPPED');
  // Nothing of the job outlives its stop.
  await waitFor(() => processesWith(marker).length === 0, { what: "the job's processes to be gone", timeoutMs: 10_000 });
  const logs = await run(rayCli, ['job', 'logs', '--address', head.url, id], env);
  expect(logs.code, logs.out).toBe(0);
  return { logs: logs.stdout, stopMs };
}

describe("stopping a job: Ray's signal, to every process, with Ray's grace period", () => {
  it('gives every process of the job the default grace (3 s) in a served sandbox, and kills at RAY_JOB_STOP_WAIT_TIME_S', async (ctx) => {
    if (skipReason) return ctx.skip();
    const head = await startHead({ numCpus: 2 });

    const graceful = await submitAndStop(head, 'stop-default');
    for (const who of ['a', 'b']) expect(graceful.logs).toContain(`cleanup done stop-marker-stop-default-${who} after SIGTERM`);

    // A grace of 1 s is shorter than the handlers' 2 s: they are killed before they print.
    const short = await submitAndStop(head, 'stop-short', { RAY_JOB_STOP_WAIT_TIME_S: '1' });
    expect(short.logs).not.toContain('cleanup done');
    expect(short.logs).toContain('ready stop-marker-stop-short-a');

    const sigint = await submitAndStop(head, 'stop-sigint', { RAY_JOB_STOP_SIGNAL: 'SIGINT' });
    for (const who of ['a', 'b']) expect(sigint.logs).toContain(`cleanup done stop-marker-stop-sigint-${who} after SIGINT`);
    console.log(`stop took ${graceful.stopMs} ms (default grace), ${short.stopMs} ms (1 s grace), ${sigint.stopMs} ms (SIGINT)`);
  });

  it('waits for every process in a sandbox of its own (no reuse) and without bubblewrap too', async (ctx) => {
    if (skipReason) return ctx.skip();
    for (const env of [{ RAYSUB_SANDBOX_REUSE: '0' }, { RAYSUB_SANDBOX: 'process' }] as Record<string, string>[]) {
      const head = await startHead({ numCpus: 2, env });
      const id = env.RAYSUB_SANDBOX ? 'stop-process' : 'stop-own';
      const { logs } = await submitAndStop(head, id);
      for (const who of ['a', 'b']) expect(logs, JSON.stringify(env)).toContain(`cleanup done stop-marker-${id}-${who} after SIGTERM`);
    }
  });
});
