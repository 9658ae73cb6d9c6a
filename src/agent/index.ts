/**
 * The agent: registers its node, long-polls the head for assignments, runs them as workers, and
 * delivers their events and output exactly once, through head restarts and network drops.
 */
import os from 'node:os';
import path from 'node:path';
import { agentProcessEnv, RAYSUB_VERSION, type AgentOptions } from '../shared/config.js';
import { RaysubError, toRaysubError } from '../shared/errors.js';
import { containUnhandledRejections } from '../shared/boundary.js';
import { createLogger, type Logger } from '../shared/log.js';
import type { Assignment, NodeTotals, PollResponse, TaskRef } from '../shared/protocol/index.js';
import { detectGpus } from './detect.js';
import { installRuntimeLibs, InjobService, localAddressFor } from './injob/index.js';
import { EnvCache } from './envs/index.js';
import { HeadLink } from './headLink.js';
import { alternativeName, lockWorkDir, readNodeFile, writeNodeFile } from './nodeFile.js';
import type { Launcher } from './launcher.js';
import { DiskGuard } from './diskGuard.js';
import { Outbox } from './outbox.js';
import { chooseLauncher } from './sandbox/index.js';
import { StartQueue } from './startQueue.js';
import { TaskRun } from './taskRun.js';
import { Workspace } from './workspace.js';
import { DEFAULT_FETCH_IDLE_MS } from './remoteFetch.js';
import { sleep } from '../shared/abort.js';

export interface RunningAgent {
  readonly nodeName: string;
  readonly launcher: Launcher;
  nodeId(): string;
  /** Take no new work, let running tasks finish, then close. */
  drain(): Promise<void>;
  /** Kill every worker, tell the head this node is leaving, and stop. */
  close(): Promise<void>;
}

type AgentState = 'starting' | 'running' | 'closing' | 'closed';

const MAX_REPORT_BYTES = 4 * 1024 * 1024;
/** How long new output may wait to be batched into one report. */
const OUTPUT_BATCH_MS = 20;
/**
 * How long a start may wait: a task that ends within it reports its start and exit in one
 * exchange. The start time itself is the agent's clock; only the head's view lags.
 */
const START_BATCH_MS = 100;
const FINISHED_KEPT = 10_000;
/** Worker launches in flight at once (see startQueue.ts). */
const MAX_CONCURRENT_LAUNCHES = 8;
const refKey = (r: TaskRef): string => `${r.task_id}#${r.attempt}`;

class Agent implements RunningAgent {
  private state: AgentState = 'starting';
  private id = '';
  private heartbeatMs = 1000;
  private pollWaitMs = 20_000;
  private readonly runs = new Map<string, TaskRun>();
  /**
   * Attempts whose exit the head has recorded, newest last: assignments reach the agent through
   * two channels (poll and report answers), and a late copy of one must not run it again.
   */
  private readonly finished = new Set<string>();
  private readonly stop = new AbortController();
  private reportWake: (() => void) | null = null;
  private reportTimer: NodeJS.Timeout | null = null;
  private reportDueAt = 0;
  private reregistering: Promise<void> | null = null;
  private loops: Promise<void>[] = [];
  private readonly envCache: EnvCache;
  private readonly starts = new StartQueue(MAX_CONCURRENT_LAUNCHES);
  private readonly injob: InjobService;
  /** The name this node registers under: given, or kept in the work dir, or the default. */
  private name: string;
  /** The node id of this work dir's last registration, presented to take it back. */
  private lastId: string | undefined;
  /** What agents authenticate each other with; the head hands it out at registration. */
  private peerToken = '';
  /** Runs once the agent has stopped (releases the work dir). */
  afterClose: (() => void) | null = null;

  constructor(
    private readonly opts: AgentOptions,
    private readonly totals: NodeTotals,
    readonly launcher: Launcher,
    private readonly head: HeadLink,
    private readonly workspace: Workspace,
    private readonly outbox: Outbox,
    private readonly log: Logger,
  ) {
    const saved = readNodeFile(opts.workDir);
    this.name = opts.nodeNameGiven ? opts.nodeName : (saved?.name ?? opts.nodeName);
    this.lastId = saved?.name === this.name ? saved.node_id : undefined;
    outbox.onChange = (urgency) => this.wakeReporter(urgency === 'exit' ? 0 : urgency === 'output' ? OUTPUT_BATCH_MS : START_BATCH_MS);
    workspace.health.onChange = () => this.wakeReporter(0);
    this.envCache = new EnvCache(path.join(opts.workDir, 'envs'), opts.cacheLimitBytes, log.child({ component: 'envs' }));
    this.injob = new InjobService({
      workDir: opts.workDir,
      token: () => this.peerToken,
      outbox,
      killGraceMs: opts.killGraceMs,
      log: log.child({ component: 'injob' }),
      totals,
      nodeName: opts.nodeName,
      objectStore: { dir: opts.objectStoreDir, memory: opts.objectStoreMemory, hugePages: opts.objectStorePages === 'huge' },
      wake: () => this.wakeReporter(2),
      workspace,
      launcher,
      runtimeEnv: { agentEnv: agentProcessEnv(), cache: this.envCache, packages: workspace },
      headAddress: head.address,
      nodeId: () => this.id,
      libs: installRuntimeLibs(opts.workDir),
    });
    // The object store's per-job directories are bound per task, as the job's others are.
    if (this.injob.shm.root) launcher.addJobRoot?.(this.injob.shm.root);
  }

  get nodeName(): string {
    return this.name;
  }

  nodeId(): string {
    return this.id;
  }

  async start(): Promise<void> {
    await this.injob.start(await localAddressFor(this.head.address));
    await this.register(this.lastId);
    if (this.stop.signal.aborted) return; // stopped while starting: close() takes down what start-up set up
    this.state = 'running';
    this.loops = [this.pollLoop(), this.reportLoop()];
  }

  private async register(previous?: string): Promise<void> {
    for (let attempt = 0; !this.stop.signal.aborted; attempt++) {
      try {
        const res = await this.head.register(
          {
            node_name: this.name,
            hostname: os.hostname(),
            pid: process.pid,
            version: RAYSUB_VERSION,
            totals: this.totals,
            sandbox: { mode: this.launcher.mode, detail: this.launcher.detail, cgroups: this.launcher.cgroups, limits: [...this.launcher.limits] },
            previous_node_id: previous,
            unhealthy: this.workspace.health.unhealthy,
          },
          this.stop.signal,
        );
        this.id = res.node_id;
        this.heartbeatMs = res.heartbeat_interval_ms;
        this.pollWaitMs = res.poll_wait_ms;
        this.outbox.logCap = res.log_cap ? { keepBytes: res.log_cap.max_job_bytes, tailBytes: res.log_cap.tail_bytes } : null;
        // A head from before peer tokens: agents shared one token and presented it to each other.
        this.peerToken = res.peer_token ?? this.opts.token;
        if (res.warning) this.log.warn(res.warning);
        // A work dir that takes no writes (reported as unhealthy) must not undo the registration.
        try { writeNodeFile(this.opts.workDir, { name: this.name, node_id: this.id }); } catch (err) { this.log.warn({ err: toRaysubError(err).message }, 'could not keep the node id in the work dir'); }
        this.log.info({ nodeId: this.id, name: this.name, totals: this.totals }, 'registered with the head');
        return;
      } catch (err) {
        const e = toRaysubError(err);
        if (e.code === 'NODE_NAME_TAKEN' && !this.opts.nodeNameGiven && this.name === this.opts.nodeName) {
          // The default name (the host name) is another agent's, e.g. the head's embedded one: take
          // one of our own, kept in the work dir so restarts keep it.
          this.name = alternativeName(this.opts.nodeName);
          previous = undefined;
          this.log.warn({ name: this.name }, `${e.message}; registering as ${this.name}`);
          continue;
        }
        if (e.code === 'UNAUTHORIZED' || e.code === 'FORBIDDEN' || e.code === 'TLS_UNTRUSTED' || e.code === 'NODE_NAME_TAKEN') throw e;
        this.log.warn({ err: e.message, attempt }, 'cannot register with the head yet; retrying');
        await sleep(Math.min(10_000, 200 * 2 ** Math.min(attempt, 6)), this.stop.signal);
      }
    }
  }

  private known(): TaskRef[] {
    return [...this.runs.values()].map((r) => r.ref);
  }

  private async pollLoop(): Promise<void> {
    let failures = 0;
    while (this.state === 'running') {
      try {
        await this.reregistering;
        const res = await this.head.poll(this.id, { known: this.known(), wait_ms: this.pollWaitMs, ...this.injob.pollFields() }, this.stop.signal);
        failures = 0;
        this.handlePoll(res);
        await this.injob.polled(res.injob);
      } catch (err) {
        if (this.state !== 'running') break;
        failures = await this.onError(err, failures, 'poll');
      }
    }
  }

  private handlePoll(res: PollResponse): void {
    for (const a of res.assignments) this.accept(a);
    this.applyKills(res.kills);
  }

  private forget(k: string): void {
    this.runs.delete(k);
    this.finished.add(k);
    if (this.finished.size > FINISHED_KEPT) this.finished.delete(this.finished.values().next().value ?? k);
  }

  private accept(a: Assignment): void {
    const k = refKey({ task_id: a.task_id, attempt: a.attempt });
    if (this.runs.has(k) || this.finished.has(k)) return;
    const run = new TaskRun(a, {
      workspace: this.workspace,
      launcher: this.launcher,
      outbox: this.outbox,
      log: this.log.child({ task: a.task_id, attempt: a.attempt }),
      killGraceMs: this.opts.killGraceMs,
      headAddress: this.head.address,
      nodeId: () => this.id,
      nodeName: this.name,
      runtimeEnv: { agentEnv: agentProcessEnv(), cache: this.envCache, packages: this.workspace },
      injob: this.injob,
      starts: this.starts,
    });
    this.runs.set(k, run);
  }

  private applyKills(kills: readonly TaskRef[]): void {
    for (const ref of kills) this.runs.get(refKey(ref))?.kill('head');
  }

  /** Send a report within `delayMs` (sooner if one is already due sooner). */
  private wakeReporter(delayMs: number): void {
    if (delayMs === 0) {
      // Now, not at the next timer tick (a timer waits at least 1 ms): an exit frees resources.
      if (this.reportTimer) clearTimeout(this.reportTimer);
      this.reportTimer = null;
      setImmediate(() => this.reportWake?.());
      return;
    }
    const due = Date.now() + delayMs;
    if (this.reportTimer) {
      if (this.reportDueAt <= due) return;
      clearTimeout(this.reportTimer);
    }
    this.reportDueAt = due;
    this.reportTimer = setTimeout(() => {
      this.reportTimer = null;
      this.reportWake?.();
    }, delayMs);
  }

  private async reportLoop(): Promise<void> {
    let failures = 0;
    while (this.state === 'running') {
      if ((!this.outbox.hasWork() && !this.injob.relay.hasWork()) || failures > 0) {
        await new Promise<void>((resolve) => {
          const done = (): void => {
            clearTimeout(t);
            this.reportWake = null;
            this.stop.signal.removeEventListener('abort', done);
            resolve();
          };
          const t = setTimeout(done, failures > 0 ? Math.min(5000, 100 * 2 ** failures) : this.heartbeatMs);
          this.reportWake = failures > 0 ? null : done;
          this.stop.signal.addEventListener('abort', done);
        });
        if (this.state !== 'running') break;
      }
      try {
        await this.reregistering;
        const req = { ...this.outbox.build(MAX_REPORT_BYTES, this.known()), usage: this.envCache.usage(), injob: this.injob.report(), unhealthy: this.workspace.health.unhealthy };
        const res = await this.head.report(this.id, req, this.stop.signal).catch((err: unknown) => {
          this.injob.reportFailed();
          throw err;
        });
        this.injob.answered(res.injob);
        failures = 0;
        for (const ref of this.outbox.ack(res)) this.forget(refKey(ref));
        // The answer to a report that freed resources carries what the head placed here next.
        for (const a of res.assignments ?? []) this.accept(a);
        this.applyKills(res.kills);
      } catch (err) {
        if (this.state !== 'running') break;
        failures = await this.onError(err, failures, 'report');
      }
    }
  }

  private async onError(err: unknown, failures: number, what: string): Promise<number> {
    const e = toRaysubError(err);
    if (e.code === 'NODE_LOST') {
      await this.handleLost();
      return 0;
    }
    if (failures === 0 || failures % 20 === 0) this.log.warn({ err: e.message, code: e.code }, `${what} failed; retrying`);
    if (what === 'poll') await sleep(Math.min(5000, 100 * 2 ** Math.min(failures, 6)), this.stop.signal);
    return failures + 1;
  }

  /** The head declared this node lost: everything it ran has been fenced. Kill it all, register anew. */
  private handleLost(): Promise<void> {
    this.reregistering ??= (async () => {
      this.log.warn({ nodeId: this.id }, 'the head declared this node lost; killing its workers and registering again');
      const runs = [...this.runs.values()];
      for (const r of runs) r.kill('head');
      await Promise.all(runs.map((r) => r.done));
      this.runs.clear();
      this.outbox.reset();
      await this.register(this.id);
    })().finally(() => {
      this.reregistering = null;
    });
    return this.reregistering;
  }

  async drain(): Promise<void> {
    if (this.state !== 'running') return;
    await this.head.drain(this.id).catch((err: unknown) => this.log.warn({ err: toRaysubError(err).message }, 'could not tell the head this node drains'));
    this.log.info({ tasks: this.runs.size }, 'draining: waiting for running tasks to finish');
    // Runs leave the map once the head has recorded their exit.
    while (this.state === 'running' && (this.runs.size > 0 || this.outbox.hasWork())) {
      await Promise.all([...this.runs.values()].map((r) => r.done));
      await sleep(50, this.stop.signal);
    }
    await this.close();
  }

  /** Stop waiting for the head to take a registration (a signal during start-up); close() follows. */
  abortStart(): void {
    if (this.state === 'starting') this.stop.abort();
  }

  async close(): Promise<void> {
    if (this.state === 'closing' || this.state === 'closed') return;
    this.state = 'closing';
    const runs = [...this.runs.values()];
    for (const r of runs) r.kill('head');
    await Promise.all(runs.map((r) => r.done));
    await this.injob.close();
    this.stop.abort();
    if (this.reportTimer) clearTimeout(this.reportTimer);
    await Promise.allSettled(this.loops);
    await this.head.leave(this.id).catch(() => undefined);
    await this.launcher.close?.();
    this.workspace.close();
    await this.head.close();
    this.state = 'closed';
    this.afterClose?.();
    this.log.info('agent stopped');
  }
}

/** Start an agent; `signal` stops a start-up still waiting for the head (the agent is returned closed). */
export async function startAgent(opts: AgentOptions, logger?: Logger, signal?: AbortSignal): Promise<RunningAgent> {
  const log = logger ?? createLogger('raysub-agent', opts.logLevel);
  containUnhandledRejections(log);
  if (opts.token === '') throw new RaysubError('USAGE', 'the agent needs a token');
  const unlock = lockWorkDir(opts.workDir);
  let workspace: Workspace | null = null;
  let agent: Agent | null = null;
  try {
    const gpus = opts.numGpus ?? (await detectGpus()).length;
    // Every worker is watched for the disk it fills (diskGuard.ts); the guard starts with the agent.
    const disk = new DiskGuard(opts.workDir, opts.minFreeDisk, log.child({ component: 'disk' }));
    const launcher = disk.wrap(await chooseLauncher(opts, log));
    log.info({ sandbox: launcher.mode, detail: launcher.detail, capacity: launcher.capacity }, 'sandbox');
    const head = new HeadLink(opts.address, opts.token, { ca: opts.ca, pin: opts.pin });
    workspace = new Workspace(
      opts.workDir,
      head,
      { caps: opts.packageCaps, unusedTtlMs: opts.unusedPackageTtlMs, limitBytes: opts.cacheLimitBytes, remote: { maxBytes: opts.maxPackageBytes, idleMs: DEFAULT_FETCH_IDLE_MS } },
      log.child({ component: 'workspace' }),
    );
    const outbox = new Outbox(workspace.spoolDir, opts.maxBufferedLogBytes);
    // The head places no more tasks here than the launcher can run at once (in-job tasks included).
    const slots = Math.max(0, Math.floor(launcher.capacity));
    const totals: NodeTotals = { num_cpus: opts.numCpus, num_gpus: gpus, memory: opts.memory, resources: { ...opts.resources }, task_slots: slots };
    agent = new Agent(opts, totals, launcher, head, workspace, outbox, log);
    agent.afterClose = () => {
      disk.close();
      unlock();
    };
    await workspace.health.check(); // registers unhealthy if the work dir takes no writes already
    const abort = agent.abortStart.bind(agent);
    signal?.addEventListener('abort', abort, { once: true });
    await (signal?.aborted ? Promise.resolve() : agent.start()).finally(() => signal?.removeEventListener('abort', abort));
    if (signal?.aborted) await agent.close();
    else disk.start();
    return agent;
  } catch (err) {
    // Refused for good (a token, certificate or name problem): give back what start-up took.
    if (agent) await agent.close().catch(() => undefined);
    else workspace?.close();
    unlock();
    throw err;
  }
}
