/**
 * One attempt of one task on this agent: prepare (package, runtime env), launch in the sandbox,
 * ship output, enforce the timeout, obey kill orders, report the exit.
 */
import type { Logger } from '../shared/log.js';
import { type Assignment, type AttemptUsage, type ExitOutcome, type TaskRef } from '../shared/protocol/index.js';
import { toRaysubError } from '../shared/errors.js';
import { formatBytes } from '../shared/resources.js';
import type { LaunchSpec, Launcher, WorkerHandle } from './launcher.js';
import type { Outbox } from './outbox.js';
import type { StartQueue } from './startQueue.js';
import type { RuntimeEnvContext } from './runtimeEnv.js';
import { prepareWorker, SetupError } from './prepareWorker.js';
import { stopPolicyOf, type StopPolicy } from './stopPolicy.js';
import type { Workspace } from './workspace.js';
import { sleep } from '../shared/abort.js';

export type RunState = 'preparing' | 'running' | 'exited';

export interface TaskRunDeps {
  workspace: Workspace;
  launcher: Launcher;
  outbox: Outbox;
  log: Logger;
  killGraceMs: number;
  headAddress: string;
  nodeId: () => string;
  nodeName: string;
  runtimeEnv: RuntimeEnvContext;
  /** Turns for launching workers, shared by the node's tasks. */
  starts: StartQueue;
  /** The in-job task API: the job's socket and libraries, and this node's own resource ledger. */
  injob?: {
    attach(a: Assignment, ref: TaskRef, env: Record<string, string>): Promise<{ env: Record<string, string>; paths: string[]; writable: string[]; detach: () => void }>;
    holdJobTask(a: Assignment, signal: AbortSignal): Promise<() => void>;
  };
}

/** First and longest wait before trying a launch again that found no room. */
const CAPACITY_RETRY_MS = 100;
const CAPACITY_RETRY_MAX_MS = 2000;

export class TaskRun {
  readonly ref: TaskRef;
  state: RunState = 'preparing';
  private readonly abort = new AbortController();
  private worker: WorkerHandle | null = null;
  private killReason: 'head' | 'timeout' | null = null;
  private timer: NodeJS.Timeout | null = null;
  /** The job's stop signal and grace period (Ray's RAY_JOB_STOP_SIGNAL and RAY_JOB_STOP_WAIT_TIME_S). */
  private readonly stop: StopPolicy;
  readonly done: Promise<void>;

  constructor(
    readonly assignment: Assignment,
    private readonly deps: TaskRunDeps,
  ) {
    this.ref = { task_id: assignment.task_id, attempt: assignment.attempt };
    this.stop = stopPolicyOf(assignment.job.env_vars, deps.killGraceMs);
    this.done = this.run();
  }

  private terminate(): void {
    void this.worker?.terminate(this.stop.graceMs, this.stop.signal);
  }

  get key(): string {
    const a = this.assignment;
    return `${a.job.job_id}.${a.task_index}.${a.attempt}`;
  }

  private system(text: string): void {
    this.deps.outbox.output(this.ref, 'system', Buffer.from(`[raysub] ${text}\n`));
  }

  /** Kill on the head's order (stop, fenced attempt) or at the deadline. Idempotent. */
  kill(reason: 'head' | 'timeout'): void {
    if (this.killReason || this.state === 'exited') return;
    this.killReason = reason;
    this.abort.abort();
    this.terminate();
  }

  private async run(): Promise<void> {
    const a = this.assignment;
    const { outbox, workspace, log } = this.deps;
    let taskDir: string | null = null;
    let releaseEnvs: (() => void) | undefined;
    let detachApi: (() => void) | undefined;
    let releaseHold: (() => void) | undefined;
    try {
      if (a.attempt > 1) this.system(`attempt ${a.attempt} on ${this.deps.nodeName}`);
      for (const note of this.stop.notes) this.system(note);
      if (a.timeout_s) {
        this.timer = setTimeout(() => this.kill('timeout'), a.timeout_s * 1000);
      }
      const prepared = await prepareWorker(this.deps, a, {
        key: this.key,
        group: a.job.job_id,
        signal: this.abort.signal,
        output: (text) => outbox.output(this.ref, 'system', Buffer.from(text)),
      });
      taskDir = prepared.dir;
      releaseEnvs = () => prepared.release();
      this.checkAborted();
      // In-job work may hold what the head thought free here: wait until this node really has it.
      releaseHold = await this.deps.injob?.holdJobTask(a, this.abort.signal);
      this.checkAborted();
      const api = await this.deps.injob?.attach(a, this.ref, prepared.env);
      detachApi = api?.detach;
      this.worker = await this.launch({
        key: this.key,
        alsoHolds: [outbox.spoolPathOf(this.ref)],
        group: a.job.job_id,
        argv: prepared.argv ?? ['/bin/sh', '-c', a.entrypoint],
        cwd: taskDir,
        env: api?.env ?? prepared.env,
        // A memory request is a limit only when the job asked for one (Ray only places by it).
        resources: { ...a.resources, memory: a.job.memory },
        gpuIds: a.gpu_ids,
        network: a.job.sandbox.network ?? 'host',
        readOnlyPaths: [...prepared.readOnlyPaths, ...(api?.paths ?? [])],
        writablePaths: api?.writable ?? [],
        userNamespaces: a.job.sandbox.user_namespaces === true,
        mergeStderr: a.job.sandbox.separate_stderr !== true,
      });
      this.state = 'running';
      outbox.started(this.ref, Date.now());
      if (this.killReason) this.terminate();
      const streams = Promise.all([
        pump(this.worker.stdout, (b) => outbox.output(this.ref, 'stdout', b)),
        pump(this.worker.stderr, (b) => outbox.output(this.ref, 'stderr', b)),
      ]);
      const exit = await this.worker.exited;
      // Output still in the pipes belongs to this attempt; a stray holder of the pipe is not waited for.
      await Promise.race([streams, new Promise((r) => setTimeout(r, 2000).unref())]);
      if (exit.evicted && !this.killReason) this.system(exit.evicted);
      const why = exit.evicted ?? (exit.oom ? oomMessage(a.job.memory > 0 ? a.job.memory : null, exit.usage?.peak_memory ?? null) : null);
      this.finish(this.outcomeOf(exit), exit.code, exit.signal, why, exit.usage ?? { cpu_s: null, peak_memory: null });
    } catch (err) {
      if (this.killReason) {
        this.finish(this.killReason === 'timeout' ? 'timeout' : 'killed', null, null, this.killReason === 'timeout' ? `timed out after ${a.timeout_s}s during setup` : 'stopped during setup');
      } else if (err instanceof SetupError && err.nodeFault) {
        // The node's fault (its work dir is not writable), not the job's: the head may retry it elsewhere.
        const sick = this.deps.workspace.health.unhealthy ? '; the node takes no new work until its work dir takes writes again' : '';
        this.system(`${err.message}${sick}`);
        this.finish(err.outcome, null, null, err.message, undefined, 'node');
      } else if (err instanceof SetupError) {
        this.system(`${err.outcome === 'setup_failed' ? 'runtime env setup failed' : 'could not start'}: ${err.message}`);
        this.finish(err.outcome, null, null, err.message);
      } else {
        log.error({ err, task: a.task_id }, 'task failed inside the agent');
        this.system(`internal error: ${toRaysubError(err).message}`);
        this.finish('spawn_failed', null, null, toRaysubError(err).message);
      }
    } finally {
      if (this.timer) clearTimeout(this.timer);
      // After the exit report has left (it is sent from an immediate queued before this one).
      if (taskDir) {
        const dir = taskDir;
        setImmediate(() => workspace.removeTaskDir(dir));
      }
      // Cached envs stay leased until the worker is gone, so eviction never pulls them from under it.
      releaseEnvs?.();
      detachApi?.();
      releaseHold?.();
    }
  }

  /**
   * Launch the worker. While the node has no room for it (NODE_AT_CAPACITY: the head's ledger and
   * the launcher's disagree for a moment, say while sandboxes of exited tasks are removed), wait
   * and try again: the task is not at fault.
   */
  private async launch(spec: LaunchSpec): Promise<WorkerHandle> {
    for (let delay = CAPACITY_RETRY_MS; ; delay = Math.min(delay * 2, CAPACITY_RETRY_MAX_MS)) {
      const done = await this.deps.starts.take(this.abort.signal);
      try {
        return await this.deps.launcher.launch(spec);
      } catch (err) {
        const e = toRaysubError(err);
        if (e.code !== 'NODE_AT_CAPACITY') throw new SetupError('spawn_failed', `could not start the worker: ${e.message}`);
        if (delay === CAPACITY_RETRY_MS) {
          this.deps.log.warn({ err: e.message }, 'no room for another worker on this node yet; waiting');
          this.system('waiting for room on the node to start');
        }
        done();
        await sleep(delay, this.abort.signal);
        this.checkAborted();
      } finally {
        done();
      }
    }
  }

  private checkAborted(): void {
    if (this.abort.signal.aborted) throw new Error('aborted');
  }

  private outcomeOf(exit: { code: number | null; signal: NodeJS.Signals | null; oom: boolean; evicted?: string }): ExitOutcome {
    if (this.killReason === 'head') return 'killed';
    if (this.killReason === 'timeout') return 'timeout';
    if (exit.evicted) return 'evicted';
    if (exit.oom) return 'oom';
    if (exit.signal) return 'signaled';
    return 'exited';
  }

  private finish(outcome: ExitOutcome, code: number | null, signal: string | null, message: string | null, usage?: AttemptUsage, fault?: 'node'): void {
    this.state = 'exited';
    this.deps.outbox.exited(this.ref, { at: Date.now(), outcome, exit_code: code, signal, message, ...(usage ? { usage } : {}), ...(fault ? { fault } : {}) });
  }
}

/**
 * Why the kernel killed it: over its own limit, or — with no limit of its own, or well under it —
 * because the node's tasks together used all the memory the node offers (the agent's cgroup root:
 * sandbox/rootMemory.ts).
 */
function oomMessage(limit: number | null, peak: number | null): string {
  if (limit !== null && (peak === null || peak >= limit * 0.9)) return `killed by the kernel for exceeding its memory limit of ${formatBytes(limit)}`;
  const own = limit === null ? 'it has no memory limit of its own' : `it held ${formatBytes(peak ?? 0)} of its ${formatBytes(limit)}`;
  return `killed by the kernel: this node's tasks together used all the memory the node offers (--memory), and ${own}`;
}

async function pump(stream: NodeJS.ReadableStream, sink: (b: Buffer) => void): Promise<void> {
  for await (const chunk of stream) sink(chunk as Buffer);
}
