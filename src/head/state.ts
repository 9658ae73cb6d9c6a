/**
 * The head's in-memory view of live work: jobs and tasks that are not finished and nodes that are
 * alive. SQLite stays the single source of truth: this is rebuilt from it at start-up and after a
 * transaction that changed it failed. Only the engine holds a LiveState; everyone else reads it
 * through the LiveView interface, whose types are read-only.
 */
import { capacityFromTotals, applyPlacement, cloneCapacity, type Capacity, type TaskRequest } from '../shared/resources.js';
import type { NodeCondition, NodeTotals, RuntimeEnv, SandboxMode, TaskState, Usage } from '../shared/protocol/index.js';
import { LOCAL_AGENT_CREDENTIAL } from './auth.js';
import { parseArraySpec } from '../shared/arraySpec.js';
import type { JobRow, NodeRow, Store, TaskRow } from './db/index.js';

export interface LiveJob {
  id: string;
  seq: number;
  entrypoint: string;
  runtimeEnv: RuntimeEnv;
  /** As submitted (null: none). */
  metadata: Record<string, string> | null;
  request: TaskRequest;
  parallel: number;
  maxRetries: number;
  retryBackoffS: number;
  timeoutS: number | null;
  priority: number;
  /** Wait for a node that can run it to join, however long, instead of failing as UNSCHEDULABLE. */
  waitForCapacity: boolean;
  /** Its memory request is a limit (the task is killed above it), not only what placement counts. */
  memoryLimit: boolean;
  /** Runs only on the head's own node (Ray's default for a job that asks for no resources). */
  driverOnHead: boolean;
  createdAt: number;
  stopRequested: boolean;
  failedTask: number | null;
  status: JobRow['status'];
  /** Held by the user: none of its tasks is placed until it is released. */
  held: boolean;
  /** The jobs it runs after (`any`: whatever their end; else they must succeed). */
  after: Dependency[];
  /** Those of them that have not ended yet: it waits while any is left. */
  waitingOn: Set<string>;
  /** At most this many of its tasks placed at once, or null. */
  maxConcurrent: number | null;
  /** Each task's array index (`--array`), or null: its task index. */
  arrayIndices: number[] | null;
}

export interface Dependency { id: string; any: boolean }

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

/** What in-job work holds on a node: the usage its agent last reported, and head placements it has not taken in yet. */
export interface InjobHoldings {
  usage: Usage | null;
  held: Map<string, { req: TaskRequest; gpuIds: number[] }>;
}

export interface LiveNode {
  id: string;
  name: string;
  totals: NodeTotals;
  capacity: Capacity;
  free: Capacity;
  sandbox: { mode: SandboxMode; detail: string; cgroups: boolean };
  /** The head's embedded agent: the head node, in Ray's words. */
  head: boolean;
  leaseUntil: number;
  draining: boolean;
  /** Its agent reports it unhealthy (its work dir failed a probe): no new work until that passes. */
  unhealthy: NodeCondition | null;
  /**
   * The agent has registered or reported to this head process. Nodes loaded from the database at
   * start-up may be gone: they get no new work until they show themselves.
   */
  contacted: boolean;
  running: Set<string>;
  injob: InjobHoldings;
}

type DeepReadonly<T> = T extends (infer U)[]
  ? readonly DeepReadonly<U>[]
  : T extends Set<infer U>
    ? ReadonlySet<U>
    : T extends Map<infer K, infer V>
      ? ReadonlyMap<K, DeepReadonly<V>>
      : T extends object
        ? { readonly [K in keyof T]: DeepReadonly<T[K]> }
        : T;

export type JobView = DeepReadonly<LiveJob>;
export type TaskView = DeepReadonly<LiveTask>;
export type NodeView = DeepReadonly<LiveNode>;

/** Live state as everyone but the engine sees it: read-only. */
export interface LiveView {
  job(id: string): JobView | undefined;
  task(id: string): TaskView | undefined;
  node(id: string): NodeView | undefined;
  /** Alive and draining nodes (a copy: safe to hold while state changes). */
  nodeList(): NodeView[];
  tasksOfJob(jobId: string): TaskView[];
  /** Pending tasks in queue order. */
  queued(): Iterable<TaskView>;
  readonly jobCount: number;
  readonly nodeCount: number;
  readonly pendingCount: number;
}

/** Queue order: higher priority first, then older job, then task index. */
export function compareTasks(ja: JobView | undefined, a: TaskView, jb: JobView | undefined, b: TaskView): number {
  return (jb?.priority ?? 0) - (ja?.priority ?? 0) || (ja?.seq ?? 0) - (jb?.seq ?? 0) || a.idx - b.idx;
}

/** Add (sign 1) or take (sign -1) reported in-job usage to or from a capacity. */
export function applyUsage(cap: Capacity, u: Usage, sign: 1 | -1): void {
  cap.cpus += sign * u.cpus;
  cap.memory += sign * u.memory;
  cap.tasks += sign * (u.tasks ?? 0);
  for (const [k, v] of Object.entries(u.custom)) cap.custom[k] = (cap.custom[k] ?? 0) + sign * v;
  u.gpus.forEach((g, i) => {
    if (i < cap.gpus.length) cap.gpus[i] = (cap.gpus[i] ?? 0) + sign * g;
  });
}

export class LiveState implements LiveView {
  readonly jobs = new Map<string, LiveJob>();
  readonly tasks = new Map<string, LiveTask>();
  /** For each live job, the live jobs that run after it. */
  readonly dependents = new Map<string, Set<string>>();
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

  job(id: string): LiveJob | undefined {
    return this.jobs.get(id);
  }

  task(id: string): LiveTask | undefined {
    return this.tasks.get(id);
  }

  node(id: string): LiveNode | undefined {
    return this.nodes.get(id);
  }

  nodeList(): LiveNode[] {
    return [...this.nodes.values()];
  }

  get jobCount(): number {
    return this.jobs.size;
  }

  get nodeCount(): number {
    return this.nodes.size;
  }

  get pendingCount(): number {
    return this.pending.size;
  }

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

  *queued(): Generator<LiveTask> {
    if (this.stale > 64 && this.stale * 2 > this.queue.length) {
      this.queue = this.queue.filter((e) => this.tickets.get(e.task.id) === e.ticket);
      this.stale = 0;
    }
    for (const e of this.queue) if (this.tickets.get(e.task.id) === e.ticket) yield e.task;
  }

  private clear(): void {
    this.jobs.clear();
    this.tasks.clear();
    this.pending.clear();
    this.queue = [];
    this.tickets.clear();
    this.stale = 0;
    this.nodes.clear();
    this.dependents.clear();
  }

  /**
   * Load everything live from the store. `carry` holds the nodes known before a reload: they keep
   * their lease (a reload never renews one) and their in-job holdings. Nodes not in it get
   * `freshLeaseUntil` (the restart grace period).
   */
  load(store: Store, freshLeaseUntil: number, carry: ReadonlyMap<string, LiveNode> = new Map()): void {
    this.clear();
    for (const row of store.jobs.active()) this.addJob(row);
    // A job that ended resolved its dependents in the transaction that ended it: only live ones still hold a job back.
    for (const job of this.jobs.values()) this.linkDependencies(job);
    for (const row of store.nodes.alive()) {
      const before = carry.get(row.id);
      const node = this.addNode(row, before?.leaseUntil ?? freshLeaseUntil, before?.contacted ?? false);
      if (before) this.carryInjob(node, before.injob);
    }
    for (const row of store.tasks.active()) {
      const job = this.jobs.get(row.job_id);
      if (job) this.addTask(row, job.createdAt);
    }
  }

  private carryInjob(node: LiveNode, injob: InjobHoldings): void {
    if (injob.usage) this.setInjobUsage(node, injob.usage);
    for (const [key, h] of injob.held) this.holdInjob(node, key, h.req, h.gpuIds);
  }

  addJob(row: JobRow): LiveJob {
    const job: LiveJob = {
      id: row.id,
      seq: row.seq,
      entrypoint: row.entrypoint,
      runtimeEnv: (JSON.parse(row.runtime_env) ?? {}) as RuntimeEnv,
      metadata: JSON.parse(row.metadata) as Record<string, string> | null,
      request: JSON.parse(row.request) as TaskRequest,
      parallel: row.parallel,
      maxRetries: row.max_retries,
      retryBackoffS: row.retry_backoff_s,
      timeoutS: row.timeout_s,
      priority: row.priority,
      waitForCapacity: row.wait_for_capacity === 1,
      memoryLimit: row.memory_limit === 1,
      driverOnHead: row.driver_on_head === 1,
      createdAt: row.created_at,
      stopRequested: row.stop_requested === 1,
      failedTask: row.failed_task,
      status: row.status,
      held: row.held === 1,
      after: row.after_jobs ? (JSON.parse(row.after_jobs) as Dependency[]) : [],
      waitingOn: new Set(),
      maxConcurrent: row.max_concurrent,
      arrayIndices: row.array_spec === null ? null : parseArraySpec(row.array_spec).indices,
    };
    this.jobs.set(job.id, job);
    return job;
  }

  /** Make the job wait on those of its dependencies that are live; returns the ones that are not (they have ended). */
  linkDependencies(job: LiveJob): Dependency[] {
    const ended: Dependency[] = [];
    for (const dep of job.after) {
      if (!this.jobs.has(dep.id)) {
        ended.push(dep);
        continue;
      }
      job.waitingOn.add(dep.id);
      this.dependents.set(dep.id, (this.dependents.get(dep.id) ?? new Set<string>()).add(job.id));
    }
    return ended;
  }

  /** The live jobs waiting on this one, no longer tracked as its dependents. */
  takeDependents(jobId: string): LiveJob[] {
    const ids = this.dependents.get(jobId);
    this.dependents.delete(jobId);
    return [...(ids ?? [])].map((id) => this.jobs.get(id)).filter((j): j is LiveJob => j !== undefined);
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

  addNode(row: NodeRow, leaseUntil: number, contacted: boolean): LiveNode {
    const totals = JSON.parse(row.totals) as NodeTotals;
    const capacity = capacityFromTotals(totals);
    const node: LiveNode = {
      id: row.id,
      name: row.name,
      totals,
      capacity,
      free: cloneCapacity(capacity),
      sandbox: JSON.parse(row.sandbox) as LiveNode['sandbox'],
      head: row.credential === LOCAL_AGENT_CREDENTIAL,
      leaseUntil,
      // An agent that drains (shutting down) or a name an operator cordoned: no new work.
      draining: row.state === 'DRAINING' || Boolean(row.cordoned),
      unhealthy: null,
      contacted,
      running: new Set(),
      injob: { usage: null, held: new Map() },
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

  /** Replace what a node's agent says its in-job work holds. */
  setInjobUsage(node: LiveNode, usage: Usage): void {
    if (node.injob.usage) applyUsage(node.free, node.injob.usage, 1);
    applyUsage(node.free, usage, -1);
    node.injob.usage = usage;
  }

  /** Hold resources for an in-job task placed on a node, until its agent takes it in. Idempotent by key. */
  holdInjob(node: LiveNode, key: string, req: TaskRequest, gpuIds: readonly number[]): void {
    if (node.injob.held.has(key)) return;
    node.injob.held.set(key, { req, gpuIds: [...gpuIds] });
    applyPlacement(node.free, req, gpuIds, -1);
  }

  /** Give back an in-job hold (taken in by the agent, whose usage covers it now, or dropped). Idempotent. */
  releaseInjob(node: LiveNode, key: string): void {
    const h = node.injob.held.get(key);
    if (!h) return;
    node.injob.held.delete(key);
    applyPlacement(node.free, h.req, h.gpuIds, 1);
  }
}
