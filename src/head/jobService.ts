/**
 * Jobs as the API sees them: submission (idempotent by submission id), reading, listing,
 * stopping and deleting. State changes go through the Engine.
 */
import { RaysubError } from '../shared/errors.js';
import { canonicalJson, newSubmissionId, sha256 } from '../shared/ids.js';
import {
  isTerminal,
  jobSubmitRequestSchema,
  parseRuntimeEnv,
  parseWith,
  type InjobCounts,
  type JobOptions,
  type JobDetails,
  type JobStatus,
  type QueueInfo,
  type RuntimeEnv,
  type TaskInfo,
} from '../shared/protocol/index.js';
import { redactUrl, remotePackageOf, unfetchedScheme } from '../shared/remotePackages.js';
import type { TaskRequest } from '../shared/resources.js';
import { parseArraySpec } from '../shared/arraySpec.js';
import { usageTotalsOf, type JobRow, type LabelFilter, type ListedJob, type NewJob, type Store, type UsageGroup } from './db/index.js';
import type { Engine } from './engine.js';
import type { InjobHub } from './injob.js';
import { packageNameOf, packagesOf } from './jobContext.js';
import { jobDetailsOf } from './jobView.js';
import { resourcesSpecified } from './rayVocabulary.js';
import type { LogStore } from './logStore.js';
import type { PackageStore } from './packageStore.js';

export interface SubmitResult {
  submissionId: string;
  created: boolean;
}

/** The head's part in what a submission gets by default. */
export interface SubmitPolicy {
  /** A job that does not say fails at once when no node could ever run it (else it waits, as on Ray). */
  failUnschedulable: boolean;
  /** The head runs a local agent and Ray's RAY_JOB_ALLOW_DRIVER_ON_WORKER_NODES is not set. */
  driverOnHead: boolean;
}

export interface ListOptions {
  limit?: number;
  cursor?: string;
  statuses?: JobStatus[];
  schedule?: string;
  labels?: readonly LabelFilter[];
  /** Only jobs submitted at or after this time (epoch ms). */
  since?: number;
}

/** `array` (its count must agree with `parallel`, its `%K` with `max_concurrent`) and `max_concurrent`. */
function arrayOptions(o: JobOptions): { array: string | null; max_concurrent: number | null } {
  if (o.array === undefined) return { array: null, max_concurrent: o.max_concurrent ?? null };
  const spec = parseArraySpec(o.array);
  if (o.parallel !== undefined && o.parallel !== spec.indices.length) {
    throw new RaysubError('INVALID_REQUEST', `parallel (${o.parallel}) and array (${spec.indices.length} indices) disagree: give one of them`);
  }
  if (o.max_concurrent !== undefined && spec.maxConcurrent !== null && o.max_concurrent !== spec.maxConcurrent) {
    throw new RaysubError('INVALID_REQUEST', `max_concurrent (${o.max_concurrent}) and the array's %${spec.maxConcurrent} disagree`);
  }
  return { array: o.array.trim(), max_concurrent: o.max_concurrent ?? spec.maxConcurrent };
}

function round3(n: number): number {
  return Math.round(n * 1000) / 1000;
}

function stripNulls(value: unknown): unknown {
  if (!value || typeof value !== 'object' || Array.isArray(value)) return value;
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== null));
}

/** A submitted runtime_env as it is kept and shown: its fields as given (Ray's `_`-prefixed ones too), without nulls. */
function asGiven(env: Record<string, unknown> | undefined): Record<string, unknown> | null {
  return env === undefined ? null : (stripNulls(env) as Record<string, unknown>);
}

export class JobService {
  /** Requests waiting for a job to end (long-polls), by job: one engine listener serves them all. */
  private readonly waiting = new Map<string, Set<() => void>>();

  constructor(
    private readonly engine: Engine,
    private readonly store: Store,
    private readonly logs: LogStore,
    private readonly packages: PackageStore,
    private readonly injob: InjobHub,
    private readonly policy: SubmitPolicy = { failUnschedulable: false, driverOnHead: false },
  ) {
    engine.on('job', (jobId, status) => {
      if (!isTerminal(status)) return;
      for (const done of [...(this.waiting.get(jobId) ?? [])]) done();
    });
  }

  submit(body: unknown, extra: { schedule?: string } = {}): SubmitResult {
    const req = parseWith(jobSubmitRequestSchema, stripNulls(body));
    const runtimeEnv = parseRuntimeEnv(req.runtime_env);
    this.checkPackages(runtimeEnv);
    const gpus = req.entrypoint_num_gpus ?? 0;
    if (gpus > 1 && !Number.isInteger(gpus)) {
      throw new RaysubError('INVALID_REQUEST', 'entrypoint_num_gpus above 1 must be a whole number');
    }
    // Ray's defaults (docs/ray-compat.md#resources): no CPUs unless asked; memory only placed by
    // unless the job asks for a limit; a request no node can meet waits, unless the job or the
    // head says to fail fast. raysub's CLI sends its own defaults explicitly.
    const request: TaskRequest = {
      cpus: req.entrypoint_num_cpus ?? 0,
      gpus,
      memory: req.entrypoint_memory ?? 0,
      custom: req.entrypoint_resources ?? {},
    };
    const o = req.raysub ?? {};
    const options = {
      parallel: o.array !== undefined ? parseArraySpec(o.array).indices.length : (o.parallel ?? 1),
      max_retries: o.max_retries ?? 0,
      retry_backoff_s: o.retry_backoff_s ?? 1,
      timeout_s: o.timeout_s ?? null,
      priority: o.priority ?? 0,
      wait_for_capacity: o.wait_for_capacity ?? !this.policy.failUnschedulable,
      memory_limit: o.memory_limit ?? false,
      hold: o.hold ?? false,
      after: o.after ?? [],
      after_any: o.after_any ?? [],
      ...arrayOptions(o),
    };
    // As Ray's job manager: a driver that asks for no resources (nor labels) runs on the head node.
    const labels = Object.keys(req.entrypoint_label_selector ?? {}).length > 0;
    const driverOnHead = this.policy.driverOnHead && !resourcesSpecified(request) && !labels;
    const deps = [...new Set(options.after)].map((dep) => ({ id: dep, any: false }));
    for (const dep of new Set(options.after_any)) if (!options.after.includes(dep)) deps.push({ id: dep, any: true });
    const specHash = sha256(
      canonicalJson({ entrypoint: req.entrypoint, runtimeEnv, metadata: req.metadata ?? {}, request, options, schedule: extra.schedule ?? null }),
    );
    const id = req.submission_id ?? req.job_id ?? newSubmissionId();
    const now = Date.now();
    const row: NewJob = {
      id,
      spec_hash: specHash,
      entrypoint: req.entrypoint,
      // Both as given (null when absent), as Ray returns them; what raysub adds is only in what the job sees.
      runtime_env: JSON.stringify(asGiven(req.runtime_env)),
      metadata: JSON.stringify(req.metadata ?? null),
      request: JSON.stringify(request),
      parallel: options.parallel,
      max_retries: options.max_retries,
      retry_backoff_s: options.retry_backoff_s,
      timeout_s: options.timeout_s,
      priority: options.priority,
      wait_for_capacity: options.wait_for_capacity ? 1 : 0,
      memory_limit: options.memory_limit ? 1 : 0,
      driver_on_head: driverOnHead ? 1 : 0,
      schedule: extra.schedule ?? null,
      status: 'PENDING',
      created_at: now,
      held: options.hold ? 1 : 0,
      after_jobs: deps.length ? JSON.stringify(deps) : null,
      max_concurrent: options.max_concurrent,
      array_spec: options.array,
    };
    const created = this.engine.submitJob(row, { waitForCapacity: options.wait_for_capacity, packages: packagesOf(runtimeEnv) });
    return { submissionId: id, created };
  }

  private checkPackages(env: RuntimeEnv): void {
    const uris = [env.working_dir, ...(env.py_modules ?? [])].filter((u): u is string => Boolean(u));
    for (const uri of uris) {
      const field = uri === env.working_dir ? 'working_dir' : 'py_modules';
      // Fetched by the agent that runs the task (checked here so a malformed one fails at once);
      // s3/gs/azure fail in its setup, as on a Ray node without the cloud's SDK.
      if (remotePackageOf(uri, field) !== null || unfetchedScheme(uri) !== null) continue;
      const name = packageNameOf(uri);
      if (!name) {
        throw new RaysubError(
          'INVALID_RUNTIME_ENV',
          `"${redactUrl(uri)}" is not a package URI raysub can fetch (gcs:// packages uploaded to this head, http(s):// archives); upload local directories with \`raysub job submit --working-dir\`${uri.startsWith('file://') ? "; file:// is not taken: it would read the node's own files with the agent's rights" : ''}`,
        );
      }
      if (!this.packages.has(name)) throw new RaysubError('INVALID_RUNTIME_ENV', `package ${uri} was not uploaded to this head`);
    }
  }

  row(id: string): JobRow {
    const row = this.store.jobs.get(id);
    if (!row) throw new RaysubError('JOB_NOT_FOUND', `Job ${id} does not exist`);
    return row;
  }

  details(id: string, withTasks = true): JobDetails {
    return this.view(this.row(id), withTasks);
  }

  list(opts: ListOptions): { jobs: JobDetails[]; nextCursor: string | null } {
    const limit = Math.min(Math.max(opts.limit ?? 1_000_000, 1), 1_000_000);
    let beforeSeq: number | undefined;
    if (opts.cursor) {
      const decoded = Buffer.from(opts.cursor, 'base64url').toString('utf8');
      if (!/^[0-9]{1,15}$/.test(decoded)) throw new RaysubError('INVALID_CURSOR', 'invalid cursor');
      beforeSeq = Number(decoded);
    }
    const listed = this.store.jobPages.page({ limit: limit + 1, beforeSeq, statuses: opts.statuses, schedule: opts.schedule, labels: opts.labels, since: opts.since });
    const more = listed.length > limit;
    if (more) listed.pop();
    const last = listed[listed.length - 1];
    const nextCursor = more && last ? Buffer.from(String(last.row.seq)).toString('base64url') : null;
    const queue = listed.some(({ row: r }) => r.status === 'PENDING' || (r.status === 'RUNNING' && r.parallel > 1)) ? this.queuePositions() : undefined;
    return { jobs: listed.map((l) => this.view(l.row, false, queue, l)), nextCursor };
  }

  stop(id: string): boolean {
    const row = this.row(id);
    if (isTerminal(row.status)) return false;
    return this.engine.stopJob(id);
  }

  /** What the jobs submitted in [from, to) used, by the value of the label `by`. */
  usage(q: { from: number; to: number; by?: string }): UsageGroup[] {
    return this.store.usage.summary(q).map((g) => ({ ...g, cpu_s: round3(g.cpu_s), run_s: round3(g.run_s), gpu_s: round3(g.gpu_s) }));
  }

  /** Hold a pending job or release it (JOB_NOT_PENDING once it runs or has ended). */
  setHeld(id: string, held: boolean): void {
    this.row(id);
    this.engine.setHeld(id, held);
  }

  delete(id: string): void {
    const row = this.row(id);
    if (!isTerminal(row.status)) {
      throw new RaysubError('JOB_NOT_TERMINAL', `Attempted to delete job '${id}', but it is in a non-terminal state ${row.status}. Stop it before deleting it.`);
    }
    this.store.jobs.remove(id);
    this.logs.removeJob(id);
  }

  /** When a job last ended (epoch ms), or null. */
  lastEndTime(): number | null {
    return this.store.jobs.lastEndTime();
  }

  /** Resolve when the job is terminal or `timeoutMs` passes. */
  async waitTerminal(id: string, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    if (isTerminal(this.row(id).status) || timeoutMs <= 0) return;
    await new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        const set = this.waiting.get(id);
        set?.delete(done);
        if (set?.size === 0) this.waiting.delete(id);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      let set = this.waiting.get(id);
      if (!set) this.waiting.set(id, (set = new Set()));
      set.add(done);
      signal?.addEventListener('abort', done);
    });
  }

  /** A job's view; `listed`: its counts, usage and driver's name as the job list read them with its row. */
  private view(row: JobRow, withTasks: boolean, queue?: Map<string, QueueInfo>, listed?: ListedJob): JobDetails {
    const { store } = this;
    let counts: Record<string, number>;
    if (listed) counts = listed.counts;
    else {
      counts = {};
      for (const c of store.tasks.countsOfJob(row.id)) counts[c.state] = c.n;
    }
    // Any node ever registered, those gone from the node list included (a restarted agent's old registration).
    const names = new Map<string, string | null>();
    if (listed && row.driver_node_id) names.set(row.driver_node_id, listed.driverName);
    const nodeName = (id: string | null): string | null => {
      if (!id) return null;
      if (!names.has(id)) names.set(id, store.nodes.get(id)?.name ?? null);
      return names.get(id) ?? null;
    };
    let tasks: TaskInfo[] | undefined;
    if (withTasks) {
      const attempts = store.tasks.attemptsOfJob(row.id);
      const arrayIndices = row.array_spec === null ? null : parseArraySpec(row.array_spec).indices;
      tasks = store.tasks.ofJob(row.id).map((t) => ({
        index: t.idx,
        ...(arrayIndices ? { array_index: arrayIndices[t.idx] ?? t.idx } : {}),
        state: t.state,
        attempt: t.attempt,
        node_id: t.node_id,
        node_name: nodeName(t.node_id),
        gpu_ids: JSON.parse(t.gpu_ids) as number[],
        exit_code: t.exit_code,
        error_type: t.error_type,
        message: t.message,
        started_at: t.started_at,
        ended_at: t.ended_at,
        attempts: attempts
          .filter((a) => a.idx === t.idx)
          .map((a) => ({
            attempt: a.attempt,
            cpu_s: a.cpu_s,
            peak_memory: a.peak_memory,
            node_id: a.node_id,
            node_name: nodeName(a.node_id),
            started_at: a.started_at,
            ended_at: a.ended_at,
            outcome: a.outcome,
            exit_code: a.exit_code,
            error_type: a.error_type,
            message: a.message,
          })),
      }));
    }
    const live = !isTerminal(row.status);
    const q = row.status === 'PENDING' ? this.queueInfo(row.id, queue) : null;
    const gpus = (JSON.parse(row.request) as TaskRequest).gpus;
    return jobDetailsOf(row, {
      usage: listed ? usageTotalsOf(listed.usage, gpus) : store.tasks.usageOfJob(row.id, gpus),
      queue: q,
      progress: live ? this.progressMessage(row, row.status === 'RUNNING' && row.parallel > 1 ? (queue ?? this.queuePositions()).get(row.id) ?? null : q) : null,
      counts,
      injob: row.injob_counts ? (JSON.parse(row.injob_counts) as InjobCounts) : this.injob.countsOf(row.id),
      tasks,
      driverNode: row.driver_node_id ? { name: nodeName(row.driver_node_id), address: this.injob.addressOf(row.driver_node_id) } : null,
    });
  }

  private progressMessage(row: JobRow, queue: QueueInfo | null): string {
    if (row.stop_requested) return 'Stopping: waiting for its processes to end.';
    if (row.failed_task !== null) return 'Failing: waiting for the remaining tasks to stop.';
    if (row.status === 'RUNNING') return queue ? `Job is currently running; its other tasks wait: ${queue.reason}.` : 'Job is currently running.';
    return queue?.reason ?? 'Job is waiting to be scheduled.';
  }

  /** A pending job's place in the queue and why it waits (null once it runs or ends). */
  queueOf(id: string): QueueInfo | null {
    return this.queueInfo(id);
  }

  /** Each waiting job's place in the queue (1 = next) and why its first waiting task waits. */
  private queuePositions(): Map<string, QueueInfo> {
    const out = new Map<string, QueueInfo>();
    for (const t of this.engine.view.queued()) {
      if (!out.has(t.jobId)) out.set(t.jobId, { position: out.size + 1, reason: t.reason ?? 'waiting for the scheduler' });
    }
    return out;
  }

  private queueInfo(jobId: string, queue?: Map<string, QueueInfo>): QueueInfo | null {
    const found = (queue ?? this.queuePositions()).get(jobId);
    if (found) return found;
    const live = this.engine.view.tasksOfJob(jobId);
    if (live.some((t) => t.state !== 'PENDING')) return { position: 0, reason: 'assigned; preparing to start' };
    return null;
  }
}

