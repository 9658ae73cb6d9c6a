/**
 * The head's in-memory view of live work: jobs and tasks that are not finished and nodes that are
 * alive. It is rebuilt from SQLite at start-up (and after any failed transaction), so SQLite stays
 * the single source of truth.
 */
import { capacityFromTotals, applyPlacement, cloneCapacity, type Capacity, type TaskRequest } from '../shared/resources.js';
import type { NodeTotals, RuntimeEnv, SandboxMode, TaskState } from '../shared/protocol/index.js';
import type { JobRow, NodeRow, Store, TaskRow } from './db/index.js';

export interface LiveJob {
  id: string;
  seq: number;
  entrypoint: string;
  runtimeEnv: RuntimeEnv;
  request: TaskRequest;
  parallel: number;
  maxRetries: number;
  retryBackoffS: number;
  timeoutS: number | null;
  priority: number;
  createdAt: number;
  stopRequested: boolean;
  failedTask: number | null;
  status: JobRow['status'];
}

export interface LiveTask {
  id: string; // "<job-id>:<index>"
  jobId: string;
  idx: number;
  state: Extract<TaskState, 'PENDING' | 'ASSIGNED' | 'RUNNING'>;
  attempt: number;
  nodeId: string | null;
  gpuIds: number[];
  notBefore: number;
  waitingSince: number;
  logStart: number;
  /** Why it waits, from the last scheduling pass. */
  reason: string | null;
}

export interface LiveNode {
  id: string;
  name: string;
  totals: NodeTotals;
  capacity: Capacity;
  free: Capacity;
  sandbox: { mode: SandboxMode; detail: string; cgroups: boolean };
  leaseUntil: number;
  draining: boolean;
  running: Set<string>;
  /** Resolves a parked long-poll so it answers now. */
  wake: (() => void) | null;
}

/** Queue order: higher priority first, then older job, then task index. */
export function compareTasks(ja: LiveJob | undefined, a: LiveTask, jb: LiveJob | undefined, b: LiveTask): number {
  return (jb?.priority ?? 0) - (ja?.priority ?? 0) || (ja?.seq ?? 0) - (jb?.seq ?? 0) || a.idx - b.idx;
}

export class LiveState {
  readonly jobs = new Map<string, LiveJob>();
  readonly tasks = new Map<string, LiveTask>();
  /** Ids of tasks waiting to be placed. */
  readonly pending = new Set<string>();
  readonly nodes = new Map<string, LiveNode>();
  /**
   * The queue, kept sorted by insertion (new jobs mostly land at the end). Entries that left the
   * queue are dropped lazily, so placing or stopping a task costs O(1).
   */
  private queue: { task: LiveTask; ticket: number }[] = [];
  private readonly tickets = new Map<string, number>();
  private nextTicket = 1;
  private stale = 0;

  enqueue(task: LiveTask): void {
    if (this.pending.has(task.id)) return;
    this.pending.add(task.id);
    // A task re-queued after a retry gets a new ticket, so its old entry no longer counts.
    const ticket = this.nextTicket++;
    this.tickets.set(task.id, ticket);
    const job = this.jobs.get(task.jobId);
    let lo = 0;
    let hi = this.queue.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const other = (this.queue[mid] as { task: LiveTask }).task;
      if (compareTasks(this.jobs.get(other.jobId), other, job, task) <= 0) lo = mid + 1;
      else hi = mid;
    }
    this.queue.splice(lo, 0, { task, ticket });
  }

  dequeue(task: LiveTask): void {
    if (!this.pending.delete(task.id)) return;
    this.tickets.delete(task.id);
    this.stale++;
  }

  /** Pending tasks in queue order. */
  *queued(): Generator<LiveTask> {
    if (this.stale > 64 && this.stale * 2 > this.queue.length) {
      this.queue = this.queue.filter((e) => this.tickets.get(e.task.id) === e.ticket);
      this.stale = 0;
    }
    for (const e of this.queue) if (this.tickets.get(e.task.id) === e.ticket) yield e.task;
  }

  clear(): void {
    this.jobs.clear();
    this.tasks.clear();
    this.pending.clear();
    this.queue = [];
    this.tickets.clear();
    this.stale = 0;
    for (const n of this.nodes.values()) n.wake?.();
    this.nodes.clear();
  }

  /** Load everything live from the store; nodes get a fresh lease (the restart grace period). */
  load(store: Store, leaseMs: number, now: number): void {
    this.clear();
    for (const row of store.jobs.active()) this.addJob(row);
    for (const row of store.nodes.alive()) this.addNode(row, now + leaseMs);
    for (const row of store.tasks.active()) {
      const job = this.jobs.get(row.job_id);
      if (job) this.addTask(row, job.createdAt);
    }
  }

  addJob(row: JobRow): LiveJob {
    const job: LiveJob = {
      id: row.id,
      seq: row.seq,
      entrypoint: row.entrypoint,
      runtimeEnv: JSON.parse(row.runtime_env) as RuntimeEnv,
      request: JSON.parse(row.request) as TaskRequest,
      parallel: row.parallel,
      maxRetries: row.max_retries,
      retryBackoffS: row.retry_backoff_s,
      timeoutS: row.timeout_s,
      priority: row.priority,
      createdAt: row.created_at,
      stopRequested: row.stop_requested === 1,
      failedTask: row.failed_task,
      status: row.status,
    };
    this.jobs.set(job.id, job);
    return job;
  }

  addTask(row: TaskRow, waitingSince: number): LiveTask {
    const task: LiveTask = {
      id: `${row.job_id}:${row.idx}`,
      jobId: row.job_id,
      idx: row.idx,
      state: row.state as LiveTask['state'],
      attempt: row.attempt,
      nodeId: row.node_id,
      gpuIds: JSON.parse(row.gpu_ids) as number[],
      notBefore: row.not_before,
      waitingSince,
      logStart: row.log_start,
      reason: null,
    };
    this.tasks.set(task.id, task);
    if (task.state === 'PENDING') this.enqueue(task);
    else if (task.nodeId) {
      const node = this.nodes.get(task.nodeId);
      const job = this.jobs.get(task.jobId);
      if (node && job) {
        applyPlacement(node.free, job.request, task.gpuIds, -1);
        node.running.add(task.id);
      }
    }
    return task;
  }

  addNode(row: NodeRow, leaseUntil: number): LiveNode {
    const totals = JSON.parse(row.totals) as NodeTotals;
    const capacity = capacityFromTotals(totals);
    const node: LiveNode = {
      id: row.id,
      name: row.name,
      totals,
      capacity,
      free: cloneCapacity(capacity),
      sandbox: JSON.parse(row.sandbox) as LiveNode['sandbox'],
      leaseUntil,
      draining: row.state === 'DRAINING',
      running: new Set(),
      wake: null,
    };
    this.nodes.set(node.id, node);
    return node;
  }

  /** Give a task's resources back to its node. */
  release(task: LiveTask): void {
    if (!task.nodeId) return;
    const node = this.nodes.get(task.nodeId);
    const job = this.jobs.get(task.jobId);
    if (node && job && node.running.delete(task.id)) applyPlacement(node.free, job.request, task.gpuIds, 1);
  }

  removeTask(task: LiveTask): void {
    this.release(task);
    this.tasks.delete(task.id);
    this.dequeue(task);
  }

  tasksOfJob(jobId: string): LiveTask[] {
    const job = this.jobs.get(jobId);
    if (!job) return [];
    const out: LiveTask[] = [];
    for (let i = 0; i < job.parallel; i++) {
      const t = this.tasks.get(`${jobId}:${i}`);
      if (t) out.push(t);
    }
    return out;
  }
}
