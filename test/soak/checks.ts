/**
 * The soak's invariants. Each returns the violations it found (an empty list when all hold), so a
 * phase reports every broken promise at once, each with what it saw.
 *
 * - A job ends as its kind says (or NODE_LOST, only when a process was killed while it lived).
 * - Nothing ran twice: in each task's log an attempt begins at most once, only attempts the head
 *   recorded appear, nothing begins after the attempt that succeeded, and an earlier attempt that
 *   ran to its end was one whose node was lost.
 * - Logs are complete: the final attempt of a succeeded task has its begin and end markers and
 *   every line between them, in order.
 * - When idle: every process alive, every node ALIVE with free == totals and nothing running, no
 *   task directory or in-job state left in a node's work dir, no process logged a broken resource
 *   invariant or an uncaught error.
 * - Retention: no finished job older than its TTL (plus a sweep), no more finished jobs than the
 *   count, no log directory without its job, no package kept past its TTL once no job names it
 *   (on the head) or no task uses it (unpacked on a node).
 */
import fs from 'node:fs';
import path from 'node:path';
import type { JobDetails, TaskInfo } from '../../src/shared/protocol/index.js';
import { HEAD_NODE, type SoakCluster } from './cluster.js';
import type { SoakJob } from './mix.js';

const MARK = /^SOAK (\d+) (begin|end)$/;

/** A task's log file on the head. */
export function taskLog(dataDir: string, jobId: string, index: number): string {
  const file = path.join(dataDir, 'logs', jobId, `${index}.log`);
  return fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
}

function lostOutcome(a: { outcome: string | null; error_type: string | null; message: string | null }): boolean {
  return /lost|NODE_LOST|stale|orphan/i.test(`${a.outcome ?? ''} ${a.error_type ?? ''} ${a.message ?? ''}`);
}

/** Markers and completeness of one task's log. */
export function checkTaskLog(job: SoakJob, task: TaskInfo, log: string): string[] {
  const out: string[] = [];
  const where = `${job.id} task ${task.index}`;
  const lines = log.split('\n');
  const begins = new Map<number, number>();
  const ends = new Map<number, number>();
  lines.forEach((l, i) => {
    const m = MARK.exec(l);
    if (!m) return;
    const a = Number(m[1]);
    const map = m[2] === 'begin' ? begins : ends;
    if (map.has(a)) out.push(`${where}: attempt ${a} ${m[2]}s twice (ran twice)`);
    map.set(a, i);
  });
  const known = new Set(task.attempts.map((a) => a.attempt));
  for (const a of begins.keys()) if (!known.has(a)) out.push(`${where}: attempt ${a} ran but the head records only attempts ${[...known].join(',')}`);
  if (task.state === 'SUCCEEDED') {
    const a = task.attempt;
    const b = begins.get(a);
    const e = ends.get(a);
    if (b === undefined || e === undefined || e < b) out.push(`${where}: succeeded attempt ${a} lacks its begin/end markers in the log (begin ${b}, end ${e})`);
    for (const x of begins.keys()) if (x > a) out.push(`${where}: attempt ${x} began after attempt ${a} succeeded`);
    for (const [x] of ends) {
      if (x >= a) continue;
      const rec = task.attempts.find((r) => r.attempt === x);
      if (rec && !lostOutcome(rec)) out.push(`${where}: attempt ${x} ran to its end and was run again though its node was not lost (${rec.outcome}/${rec.error_type})`);
    }
    if (b !== undefined && e !== undefined && job.expect.lines !== undefined) {
      const between = lines.slice(b + 1, e).filter((l) => !l.startsWith('[raysub]'));
      const want = job.kind === 'array' ? [`task ${task.index} of ${job.parallel}`] : job.kind === 'quiet' ? ['done'] : Array.from({ length: job.expect.lines }, (_, i) => `line ${i + 1}`);
      const got = job.kind === 'loud' ? between.map((l) => l.replace(/ x+$/, '')) : between;
      if (got.length !== want.length || got.some((l, i) => l !== want[i])) {
        const i = got.findIndex((l, k) => l !== want[k]);
        out.push(`${where}: log incomplete: ${got.length} of ${want.length} lines, first difference at line ${i + 1}: ${JSON.stringify(got[i])} vs ${JSON.stringify(want[i])}`);
      }
    }
  }
  return out;
}

/** The job's outcome, given whether a process was killed while it lived. */
export function checkOutcome(job: SoakJob, d: JobDetails, killed: boolean): string[] {
  const type = d.raysub.error_type;
  if (d.status === job.expect.status && (job.expect.errorType === undefined || type === job.expect.errorType)) return [];
  if (killed && d.status === 'FAILED' && type === 'NODE_LOST') return [];
  return [`${job.id}: ended ${d.status}/${type ?? '-'} (${d.raysub.message ?? d.message ?? ''}), expected ${job.expect.status}${job.expect.errorType ? `/${job.expect.errorType}` : ''}${killed ? ' or NODE_LOST' : ''}`];
}

/** Lines in the cluster's own logs that say an invariant broke or something escaped a boundary. */
export function checkProcessLogs(c: SoakCluster): string[] {
  const out: string[] = [];
  const bad = /resource invariant broken|uncaught|unhandled|internal error|FATAL/i;
  for (const { node, proc } of c.processes) {
    for (const line of proc.output().split('\n')) if (bad.test(line)) out.push(`${node} (pid ${proc.proc.pid}) logged: ${line.slice(0, 400)}`);
  }
  return out;
}

/** The cluster at rest: processes alive, nodes ALIVE and wholly free. */
export async function checkIdle(c: SoakCluster): Promise<string[]> {
  const out: string[] = [];
  const pids = c.pids();
  for (const name of [HEAD_NODE, ...c.agents.keys()]) if (!pids.has(name)) out.push(`${name}: process not alive`);
  const nodes = await c.client.nodes();
  const names = new Set([HEAD_NODE, ...c.agents.keys()]);
  for (const n of nodes) {
    if (!names.has(n.node_name)) {
      if (n.state === 'ALIVE') out.push(`node ${n.node_name} (${n.node_id}) is ALIVE but no soak process runs it (a duplicate got in?)`);
      continue;
    }
    if (n.state !== 'ALIVE') {
      out.push(`node ${n.node_name} (${n.node_id}) is ${n.state} while its process is alive`);
      continue;
    }
    const f = n.free;
    const t = n.totals;
    if (f.num_cpus !== t.num_cpus || f.memory !== t.memory || f.num_gpus !== t.num_gpus || (f.task_slots ?? 0) !== (t.task_slots ?? 0) || n.running_tasks !== 0) {
      out.push(`node ${n.node_name} idle but free ${JSON.stringify(f)} != totals ${JSON.stringify(t)} (running ${n.running_tasks})`);
    }
  }
  for (const name of names) if (!nodes.some((n) => n.node_name === name && n.state === 'ALIVE')) out.push(`node ${name} is not ALIVE on the head`);
  // Nothing of a task or a job's in-job state is left on a node when nothing runs.
  for (const [node, dir] of c.workDirs()) {
    for (const sub of ['tasks', 'j']) {
      const d = path.join(dir, sub);
      const left = fs.existsSync(d) ? fs.readdirSync(d) : [];
      if (left.length > 0) out.push(`${node}: ${sub}/ holds ${left.length} entries at rest (${left.slice(0, 3).join(', ')})`);
    }
  }
  return out;
}

export interface PackageUse {
  name: string;
  job: string;
  /** When its job ended (its tasks last used it on a node). */
  endedAt: number;
  /** The first check that found its job deleted (a finished job names its package until then). */
  missingAt?: number;
}

async function allJobs(c: SoakCluster): Promise<JobDetails[]> {
  const jobs: JobDetails[] = [];
  for (let cursor: string | undefined; ; ) {
    const page = await c.client.listJobs({ limit: 500, cursor });
    jobs.push(...page.jobs);
    if (!page.nextCursor) return jobs;
    cursor = page.nextCursor;
  }
}

const packageOf = (j: JobDetails): string | undefined => {
  const wd = j.runtime_env?.working_dir;
  return typeof wd === 'string' ? /^gcs:\/\/(.+)$/.exec(wd)?.[1] : undefined;
};

/** Retention's promises, at rest. `slackMs` covers the time checks and sweeps take under load. */
export async function checkRetention(c: SoakCluster, packages: Map<string, PackageUse>, slackMs: number): Promise<string[]> {
  const out: string[] = [];
  const r = c.opts.retention;
  const now = Date.now();
  const jobs = await allJobs(c);
  const sweepMs = Math.min(60_000, Math.max(1000, (r.jobTtlS * 1000) / 4));
  const finished = jobs.filter((j) => j.end_time !== null && ['SUCCEEDED', 'FAILED', 'STOPPED'].includes(j.status));
  if (finished.length > r.maxFinishedJobs) out.push(`${finished.length} finished jobs kept, more than --max-finished-jobs ${r.maxFinishedJobs}`);
  for (const j of finished) {
    const age = now - (j.end_time ?? now);
    if (age > r.jobTtlS * 1000 + sweepMs + slackMs) out.push(`job ${j.submission_id} ended ${Math.round(age / 1000)}s ago, past --job-ttl ${r.jobTtlS}s`);
  }
  const ids = new Set(jobs.map((j) => j.submission_id));
  const logsDir = path.join(c.head.dataDir, 'logs');
  for (const d of fs.existsSync(logsDir) ? fs.readdirSync(logsDir) : []) if (!d.startsWith('.') && !ids.has(d)) out.push(`log directory ${d} outlives its job`);
  const named = new Set(jobs.map(packageOf).filter((p): p is string => p !== undefined));
  // Collection runs every half TTL: a package may outlive its last use by one and a half TTLs.
  const pkgLimit = r.packageTtlS * 1500 + slackMs;
  const pkgDir = path.join(c.head.dataDir, 'packages');
  for (const f of fs.existsSync(pkgDir) ? fs.readdirSync(pkgDir) : []) {
    const use = packages.get(f);
    if (!use || named.has(f)) continue;
    use.missingAt ??= now;
    const unnamedSince = Math.min(use.missingAt, use.endedAt + r.jobTtlS * 1000 + sweepMs);
    if (now - unnamedSince > pkgLimit) out.push(`package ${f} of ${use.job} kept ${Math.round((now - unnamedSince) / 1000)}s after its job went, past --unused-package-ttl ${r.packageTtlS}s`);
  }
  for (const [node, dir] of c.workDirs()) {
    const unpacked = path.join(dir, 'unpacked');
    for (const f of fs.existsSync(unpacked) ? fs.readdirSync(unpacked) : []) {
      const use = packages.get(f);
      if (use && now - use.endedAt > pkgLimit) out.push(`${node}: unpacked package ${f} of ${use.job} kept ${Math.round((now - use.endedAt) / 1000)}s after its job ended, past --unused-package-ttl ${r.packageTtlS}s`);
    }
  }
  return out;
}
