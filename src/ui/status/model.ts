/**
 * What `raysub status` shows, computed once from the head's answers. The plain-text view, the ink
 * dashboard and `--json` all render this one model, so they never disagree.
 */
import type { JobDetails, NodeInfo, ScheduleInfo } from '../../shared/protocol/index.js';

export interface StatusData {
  address: string;
  fetchedAt: number;
  nodes: NodeInfo[];
  running: JobDetails[];
  pending: JobDetails[];
  failures: JobDetails[];
  /** Recently succeeded jobs (any order: the view orders them by end time). */
  successes?: JobDetails[];
  schedules: ScheduleInfo[];
}

export interface Use {
  used: number;
  total: number;
}

/** The `raysub status --json` shape (documented in docs/cli-json.md). */
export interface StatusView {
  address: string;
  time: number;
  /** `reason`: why a live node takes no new work though it is alive (it is unhealthy), else null. */
  nodes: { name: string; state: string; cpus: Use; gpus: Use; memory: Use; running_tasks: number; sandbox: string; reason: string | null }[];
  /** `progress`: an array job's tasks, "3/10 running, 7 queued" (one task: its count, "1"). */
  running: { submission_id: string; entrypoint: string; started_at: number | null; age_s: number; tasks: number; progress: string; schedule: string | null }[];
  pending: { submission_id: string; entrypoint: string; created_at: number; age_s: number; position: number | null; reason: string }[];
  /** Newest end first. */
  recent_failures: { submission_id: string; error_type: string | null; exit_code: number | null; message: string; ended_at: number | null }[];
  /** Newest end first. */
  recent_successes: { submission_id: string; entrypoint: string; ended_at: number | null; duration_s: number | null; tasks: number }[];
  schedules: { name: string; cron: string; timezone: string; suspended: boolean; next_run_at: number | null; last_status: string | null; active_jobs: number }[];
}

const round = (n: number) => Math.round(n * 1000) / 1000;

/** "3/10 running, 7 queued" for an array job (", 2 done" once some have ended); "1" for one task. */
export function taskProgress(j: Pick<JobDetails, 'raysub'>): string {
  const n = j.raysub.parallel;
  if (n <= 1) return '1';
  const counts = j.raysub.task_counts;
  const running = counts.RUNNING ?? 0;
  const queued = (counts.PENDING ?? 0) + (counts.ASSIGNED ?? 0);
  const done = n - running - queued;
  return `${running}/${n} running, ${queued} queued${done > 0 ? `, ${done} done` : ''}`;
}

/** Jobs by end time, newest first, at most `n`. */
const byEnd = (jobs: readonly JobDetails[], n: number): JobDetails[] => [...jobs].sort((a, b) => (b.end_time ?? 0) - (a.end_time ?? 0)).slice(0, n);
const ageS = (from: number | null, now: number) => (from === null ? 0 : Math.max(0, Math.round((now - from) / 1000)));

/** A node's state as an operator reads it: a cordoned live node is CORDONED, else an unhealthy one UNHEALTHY. */
export function nodeStateLabel(n: Pick<NodeInfo, 'state' | 'cordoned' | 'unhealthy'>): string {
  if (n.state === 'LOST' || n.state === 'GONE') return n.state;
  return n.cordoned ? 'CORDONED' : n.unhealthy ? 'UNHEALTHY' : n.state;
}

export function buildStatusView(d: StatusData): StatusView {
  const now = d.fetchedAt;
  return {
    address: d.address,
    time: now,
    nodes: d.nodes
      .filter((n) => n.state !== 'GONE')
      .map((n) => {
        // A node that is not alive uses nothing: never drawn as full.
        const alive = n.state === 'ALIVE' || n.state === 'DRAINING';
        return { n, alive };
      })
      .map(({ n, alive }) => ({
        name: n.node_name,
        state: nodeStateLabel(n),
        cpus: { used: alive ? round(n.totals.num_cpus - n.free.num_cpus) : 0, total: n.totals.num_cpus },
        gpus: { used: alive ? n.totals.num_gpus - n.gpu_free.filter((g) => g === 1).length : 0, total: n.totals.num_gpus },
        memory: { used: alive ? n.totals.memory - n.free.memory : 0, total: n.totals.memory },
        running_tasks: n.running_tasks,
        sandbox: n.sandbox.mode,
        reason: alive && n.unhealthy ? `unhealthy: ${n.unhealthy.reason}` : null,
      })),
    running: d.running.map((j) => ({
      submission_id: j.submission_id,
      entrypoint: j.entrypoint,
      started_at: j.raysub.started_at,
      age_s: ageS(j.raysub.started_at ?? j.raysub.created_at, now),
      tasks: j.raysub.parallel,
      progress: taskProgress(j),
      schedule: j.raysub.schedule,
    })),
    pending: [...d.pending].sort((a, b) => (a.raysub.queue?.position ?? Infinity) - (b.raysub.queue?.position ?? Infinity)).map((j) => ({
      submission_id: j.submission_id,
      entrypoint: j.entrypoint,
      created_at: j.raysub.created_at,
      age_s: ageS(j.raysub.created_at, now),
      position: j.raysub.queue?.position ?? null,
      reason: j.raysub.queue?.reason ?? j.raysub.message ?? 'waiting to be scheduled',
    })),
    recent_failures: byEnd(d.failures, 5).map((j) => ({
      submission_id: j.submission_id,
      error_type: j.raysub.error_type,
      exit_code: j.driver_exit_code,
      message: (j.raysub.message ?? j.message ?? '').split('\n')[0] ?? '',
      ended_at: j.end_time,
    })),
    recent_successes: byEnd(d.successes ?? [], 5).map((j) => ({
      submission_id: j.submission_id,
      entrypoint: j.entrypoint,
      ended_at: j.end_time,
      duration_s: j.raysub.started_at && j.end_time ? Math.max(0, Math.round((j.end_time - j.raysub.started_at) / 1000)) : null,
      tasks: j.raysub.parallel,
    })),
    // Due soonest first; paused ones last.
    schedules: [...d.schedules]
      .sort((a, b) => (a.next_run_at ?? Infinity) - (b.next_run_at ?? Infinity) || a.name.localeCompare(b.name))
      .map((s) => ({
        name: s.name,
        cron: s.cron,
        timezone: s.timezone,
        suspended: s.suspended,
        next_run_at: s.next_run_at,
        last_status: s.last_run ? (s.last_run.action === 'started' ? s.last_run.job_status : s.last_run.action) : null,
        active_jobs: s.active_jobs.length,
      })),
  };
}
