/**
 * Running one job of the mix to its end as a user would (through the SDK or the real CLI), under
 * whatever chaos goes on meanwhile, and checking what it left: its outcome, its markers, its log.
 */
import { RaysubError } from '../../src/shared/errors.js';
import type { JobDetails } from '../../src/shared/protocol/index.js';
import { runCli } from '../helpers/cluster.js';
import { checkOutcome, checkTaskLog, taskLog, type PackageUse } from './checks.js';
import type { SoakCluster } from './cluster.js';
import type { SoakJob } from './mix.js';

export interface JobResult {
  job: SoakJob;
  details: JobDetails | null;
  violations: string[];
  submittedAt: number;
  endedAt: number;
  /** The CLI could not submit it while the head was down (it exited 69 and the head has no such job). */
  unacknowledged?: boolean;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A job's details once it is terminal, asking again through head restarts, up to `timeoutMs`. */
async function terminal(c: SoakCluster, id: string, timeoutMs: number): Promise<JobDetails> {
  const deadline = Date.now() + timeoutMs;
  let last: JobDetails | null = null;
  for (;;) {
    try {
      last = await c.client.getJob(id, 20);
      if (['SUCCEEDED', 'FAILED', 'STOPPED'].includes(last.status)) return last;
    } catch (err) {
      if (err instanceof RaysubError && err.code === 'JOB_NOT_FOUND') throw err;
      await sleep(500);
    }
    if (Date.now() > deadline) throw new Error(`${id} still ${last?.status ?? 'unknown'} after ${Math.round(timeoutMs / 1000)}s: ${JSON.stringify(last?.raysub.task_counts)} ${last?.raysub.queue?.reason ?? ''}`);
  }
}

export async function runJob(c: SoakCluster, job: SoakJob, packages: Map<string, PackageUse>, timeoutMs: number): Promise<JobResult> {
  const submittedAt = Date.now();
  const violations: string[] = [];
  let details: JobDetails | null = null;
  try {
    if ('sdk' in job.via) {
      await c.client.submitJob({ submission_id: job.id, ...(job.via.sdk as { entrypoint: string }) });
      if (job.stopAfterMs !== undefined) {
        await sleep(job.stopAfterMs);
        await c.client.stopJob(job.id);
      }
    } else {
      const res = await runCli(['job', 'submit', '--submission-id', job.id, ...job.via.cli], { env: c.head.env, timeoutMs });
      const wantOk = job.expect.status === 'SUCCEEDED';
      const d = await terminal(c, job.id, 30_000).catch((err: unknown) => {
        // Never acknowledged: the CLI gave up (exit 69, unavailable) while the head was down. Not a lost job.
        if (err instanceof RaysubError && err.code === 'JOB_NOT_FOUND' && res.code === 69 && c.headDownBetween(submittedAt, Date.now())) return null;
        throw new Error(`${(err as Error).message}; raysub job submit exited ${res.code}: ${res.stderr.slice(-600)}`);
      });
      if (!d) return { job, details: null, violations, submittedAt, endedAt: Date.now(), unacknowledged: true };
      const lost = d.status === 'FAILED' && d.raysub.error_type === 'NODE_LOST';
      if (wantOk && !lost && res.code !== 0) violations.push(`${job.id}: raysub job submit exited ${res.code}: ${res.stderr.slice(-600)}`);
      // While the head is down the CLI rightly says so; otherwise never.
      if (!c.headDownBetween(submittedAt, Date.now()) && /cannot reach|unreachable/i.test(res.stderr)) violations.push(`${job.id}: the CLI said the head was unreachable: ${res.stderr.slice(-600)}`);
      if (job.kind === 'quiet' && !lost && !res.stdout.includes('done')) violations.push(`${job.id}: the quiet job's output lacks "done": ${res.stdout.slice(-300)}`);
    }
    details = await terminal(c, job.id, timeoutMs);
    const endedAt = details.end_time ?? Date.now();
    // A node killed up to a lease before the job was submitted may still take it (the head learns of the death at the lease's end).
    violations.push(...checkOutcome(job, details, c.killedBetween(submittedAt - c.leaseMs - 5000, endedAt)));
    const wd = details.runtime_env?.working_dir;
    const pkg = typeof wd === 'string' ? /^gcs:\/\/(.+)$/.exec(wd)?.[1] : undefined;
    if (pkg) packages.set(pkg, { name: pkg, job: job.id, endedAt });
    if (job.expect.marked) {
      for (const t of details.raysub.tasks ?? []) violations.push(...checkTaskLog(job, t, taskLog(c.head.dataDir, job.id, t.index)));
      if ((details.raysub.tasks ?? []).length !== job.parallel) violations.push(`${job.id}: ${details.raysub.tasks?.length} tasks, expected ${job.parallel}`);
    }
    if (job.kind === 'plain' && details.status === 'SUCCEEDED') {
      // Ray's view of the same log carries the job's own lines, in order.
      const ray = (await c.client.getLogs(job.id)).split('\n').filter((l) => l.startsWith('SOAK '));
      const file = taskLog(c.head.dataDir, job.id, 0).split('\n').filter((l) => l.startsWith('SOAK '));
      if (ray.join('|') !== file.join('|')) violations.push(`${job.id}: Ray's log view ${JSON.stringify(ray)} differs from the log ${JSON.stringify(file)}`);
    }
    return { job, details, violations, submittedAt, endedAt };
  } catch (err) {
    violations.push(`${job.id}: ${(err as Error).message}`);
    return { job, details, violations, submittedAt, endedAt: Date.now() };
  }
}
