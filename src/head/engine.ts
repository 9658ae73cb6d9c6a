/**
 * The job and task state machine, and the only writer of the head's live state. Every transition
 * is one SQLite transaction; the in-memory LiveState follows the database and is rebuilt from it
 * when a transaction that changed it fails. Others read through `view` and hear of changes through
 * typed events, emitted once the transaction that made them has committed.
 */
import { EventEmitter } from 'node:events';
import { RaysubError } from '../shared/errors.js';
import { newNodeId } from '../shared/ids.js';
import type { Logger } from '../shared/log.js';
import type { AgentEvent, JobErrorType, NodeCondition, NodeTotals, SandboxMode, Usage } from '../shared/protocol/index.js';
import type { TaskRequest } from '../shared/resources.js';
import type { NewJob, Store } from './db/index.js';
import type { LogStore } from './logStore.js';
import { neverReason } from './placement.js';
import { SchedulingPasses } from './passes.js';
import { checkDependencies } from './dependencies.js';
import { LiveState, type LiveNode, type LiveView, type NodeView } from './state.js';
import type { EngineEvents } from './events.js';
import { Settler } from './settle.js';
import { Transactions } from './transactions.js';

export interface EngineOptions {
  leaseMs: number;
  starvationMs: number;
  /** How long a queued job that no alive node could ever run waits for one to join before it fails. */
  unschedulableGraceMs: number;
}

export type { EngineEvents } from './events.js';
export interface NewNode {
  name: string;
  /** The credential that registered it (nodeIdentity.ts decides who may). */
  credential: string | null;
  hostname: string;
  totals: NodeTotals;
  sandbox: { mode: SandboxMode; detail: string; cgroups: boolean };
}

export class Engine extends EventEmitter<EngineEvents> {
  private readonly live = new LiveState();
  /** Live state, read-only. */
  readonly view: LiveView = this.live;
  private readonly passes: SchedulingPasses;
  private readonly tx: Transactions;
  /** Nodes removed in the current transaction: a reload keeps their lease. */
  private readonly retired = new Map<string, LiveNode>();
  private readonly settler: Settler;

  constructor(
    private readonly store: Store,
    private readonly logs: LogStore,
    private readonly opts: EngineOptions,
    private readonly log: Logger,
  ) {
    super();
    this.setMaxListeners(0);
    this.tx = new Transactions(
      store,
      log,
      () => this.reload(),
      () => this.retired.clear(),
    );
    this.settler = new Settler(this.live, store, logs, { announce: (e, ...a) => this.announce(e, ...a), requestSchedule: () => this.requestSchedule() });
    this.passes = new SchedulingPasses(this.live, store, logs, opts, log, {
      transact: (fn) => this.transact(fn),
      touch: () => this.tx.touch(),
      announce: (e, ...a) => this.announce(e, ...a),
      failUnschedulable: (job, reason, at) => this.settler.failUnschedulable(job, reason, at),
    });
  }

  /** Load live state at start-up: every known node gets a fresh lease (the restart grace period). */
  load(): void {
    this.live.load(this.store, Date.now() + this.opts.leaseMs);
  }

  /**
   * Run `fn` as one transaction (see transactions.ts): events it causes are emitted after the
   * commit; if it fails after changing live state, live state is reloaded from the database,
   * keeping every node's lease.
   */
  transact<T>(fn: () => T): T {
    return this.tx.run(fn);
  }

  private reload(): (() => void)[] {
    const carry = new Map([...this.retired, ...this.live.nodes]);
    // A node the database holds but memory never knew gets no lease: it must show itself.
    this.live.load(this.store, Date.now(), carry);
    this.requestSchedule();
    return [...carry.keys()].map((id) => () => this.emit('wake', id));
  }

  /** Emit now, or after the commit when inside a transaction. */
  private announce<K extends keyof EngineEvents>(event: K, ...args: EngineEvents[K]): void {
    this.tx.afterCommit(() => {
      (this.emit as (e: K, ...a: EngineEvents[K]) => boolean)(event, ...args);
    });
  }

  /** Run scheduling passes when something asks for one, from now on (the first one at once). */
  start(): void {
    this.passes.start();
  }

  /** No more passes on their own. */
  stop(): void {
    this.passes.stop();
  }

  /** Ask for a scheduling pass soon; many triggers in one tick give one pass. */
  requestSchedule(): void {
    this.passes.request();
  }

  /** One scheduling pass now (see passes.ts); `answering`'s node is not woken. */
  schedule(answering?: string, now = Date.now()): void {
    this.passes.run(answering, now);
  }

  /** Record a new job and its tasks; false when the same spec was submitted before under its id. */
  submitJob(row: NewJob, opts: { waitForCapacity: boolean; packages: readonly string[] }): boolean {
    const created = this.transact(() => {
      const existing = this.store.jobs.get(row.id);
      if (existing) {
        if (existing.spec_hash === row.spec_hash) return false;
        throw new RaysubError(
          'JOB_ALREADY_EXISTS',
          `Job with submission_id ${row.id} already exists. Please use a different submission_id. (Submitting the same spec again returns the existing job; this one differs.)`,
        );
      }
      checkDependencies(row, (id) => this.store.jobs.get(id) !== undefined);
      this.tx.touch();
      this.store.jobs.insert(row);
      this.store.packageRefs.add(row.id, opts.packages);
      for (let i = 0; i < row.parallel; i++) this.store.tasks.insert(row.id, i);
      const stored = this.store.jobs.get(row.id);
      if (!stored) throw new RaysubError('INTERNAL', `job ${row.id} vanished after insert`);
      const job = this.live.addJob(stored);
      for (const t of this.store.tasks.ofJob(row.id)) this.live.addTask(t, row.created_at);
      if (this.settler.linkDependencies(job, row.created_at)) return true;
      const never = opts.waitForCapacity ? null : neverReason(this.live, job);
      if (never) this.settler.failUnschedulable(job, never, row.created_at);
      return true;
    });
    if (created) this.requestSchedule();
    return created;
  }

  /** Apply a report's events in order, each at most once; returns the last sequence number applied. */
  applyReport(nodeId: string, events: readonly AgentEvent[], usage: string | null, now: number): number {
    return this.transact(() => {
      let acked = this.store.nodes.lastSeq(nodeId);
      for (const ev of events) {
        if (ev.seq <= acked) continue;
        if (ev.seq !== acked + 1) break; // never skip a sequence number: wait for the gap to be resent
        this.tx.touch();
        this.applyEvent(nodeId, ev);
        acked = ev.seq;
      }
      this.store.nodes.setSeq(nodeId, acked);
      this.store.nodes.touch(nodeId, now, usage);
      return acked;
    });
  }

  /** Apply one agent event. Returns false when it is stale (old attempt or finished task). */
  private applyEvent(nodeId: string, ev: AgentEvent): boolean {
    const task = this.live.tasks.get(ev.task_id);
    if (!task || task.attempt !== ev.attempt || task.nodeId !== nodeId) return false;
    if (ev.type === 'started') {
      if (task.state !== 'ASSIGNED') return false;
      this.store.tasks.start(task.jobId, task.idx, task.attempt, ev.at);
      task.state = 'RUNNING';
      const job = this.live.jobs.get(task.jobId);
      if (job && job.status === 'PENDING' && this.store.jobs.setRunning(job.id, ev.at, nodeId)) {
        job.status = 'RUNNING';
        this.announce('job', job.id, 'RUNNING');
      }
      return true;
    }
    this.settler.endAttempt(task, ev.fault === 'node' ? 'node_fault' : ev.outcome, ev.exit_code, ev.signal, ev.message, ev.at, ev.usage);
    return true;
  }

  /** Stop a job in any state: pending tasks end now, running ones are killed by their agents. */
  stopJob(jobId: string): boolean {
    const job = this.live.jobs.get(jobId);
    if (!job) return false;
    const at = Date.now();
    this.transact(() => {
      this.tx.touch();
      this.store.jobs.requestStop(job.id);
      job.stopRequested = true;
      this.settler.cancelPending(job, 'stopped by the user', 'STOPPED_BY_USER', at);
      this.settler.settleJob(job, at);
      this.announce('stopping', job.id);
    });
    this.requestSchedule();
    return true;
  }

  /** Hold a pending job (its tasks are not placed) or release it; JOB_NOT_PENDING once it runs or has ended. */
  setHeld(jobId: string, held: boolean, now = Date.now()): void {
    const job = this.live.jobs.get(jobId);
    if (!job || job.status !== 'PENDING') throw Settler.notPending(job, jobId, held);
    if (job.held === held) return;
    this.transact(() => {
      this.tx.touch();
      this.settler.setHeld(job, held, now);
    });
    this.requestSchedule();
  }

  /**
   * Fail a running job for what it did besides its tasks' exits (its in-job traffic went over a
   * limit on an agent): its tasks are killed by their agents and it ends FAILED with `errorType`.
   */
  failJob(jobId: string, errorType: JobErrorType, message: string): boolean {
    const job = this.live.jobs.get(jobId);
    if (!job || job.stopRequested || job.failedTask !== null) return false;
    const at = Date.now();
    this.transact(() => {
      this.tx.touch();
      this.settler.failWhole(job, errorType, message, at);
    });
    this.requestSchedule();
    return true;
  }

  // ---- nodes ----

  /** A node joins; `replacing` (its earlier registrations) are superseded: tasks fenced as lost, the node GONE, not LOST. */
  registerNode(n: NewNode, replacing: readonly string[], now: number): string {
    const id = newNodeId();
    this.transact(() => {
      this.tx.touch();
      for (const old of replacing) {
        const node = this.live.nodes.get(old);
        if (node) this.markLost(node, `replaced by a new agent registering as ${n.name}`, now, 'GONE');
        else if (this.store.nodes.get(old)?.state === 'LOST') this.store.nodes.setState(old, 'GONE');
      }
      this.store.nodes.insert({ id, name: n.name, hostname: n.hostname, totals: JSON.stringify(n.totals), sandbox: JSON.stringify(n.sandbox), registered_at: now, credential: n.credential });
      const row = this.store.nodes.get(id);
      if (row) this.live.addNode(row, now + this.opts.leaseMs, true);
    });
    this.requestSchedule();
    return id;
  }

  /** The node has been heard from: its lease runs from now. Throws NODE_LOST for a node that is not alive. */
  renewLease(nodeId: string, now = Date.now()): NodeView {
    const node = this.live.nodes.get(nodeId);
    if (!node) throw new RaysubError('NODE_LOST', `node ${nodeId} is not registered or was declared lost; register again`);
    node.leaseUntil = Math.max(node.leaseUntil, now + this.opts.leaseMs);
    if (!node.contacted) {
      node.contacted = true;
      this.requestSchedule();
    }
    return node;
  }

  /**
   * What the node's agent reports keeps it from new work (its work dir failed a probe), or null:
   * healthy again, which the agent's own probe decides (no operator's uncordon needed, and an
   * operator's cordon stays as it is either way).
   */
  setUnhealthy(nodeId: string, condition: NodeCondition | null): void {
    const node = this.live.nodes.get(nodeId);
    if (!node) return;
    const was = node.unhealthy;
    node.unhealthy = condition;
    if (condition && was?.reason !== condition.reason) this.log.warn({ nodeId, name: node.name, reason: condition.reason }, 'node unhealthy: it takes no new work');
    if (!condition && was) {
      this.log.info({ nodeId, name: node.name }, 'node healthy again');
      this.requestSchedule();
    }
  }

  /** Take no new work on this node; what runs there finishes. */
  drainNode(nodeId: string): void {
    const node = this.live.nodes.get(nodeId);
    if (!node || node.draining) return;
    node.draining = true;
    this.store.nodes.setState(nodeId, 'DRAINING');
    this.log.info({ nodeId, name: node.name }, 'node draining');
    this.requestSchedule();
  }

  /**
   * An operator's cordon on a node name (kept across the agent's registrations): no new work
   * while it holds; lifting it leaves an agent that drains itself draining.
   */
  setCordon(name: string, on: boolean, now = Date.now()): void {
    if (!this.store.nodes.known(name)) throw new RaysubError('NODE_NOT_FOUND', `no node named ${name} (raysub nodes lists them)`);
    this.transact(() => {
      if (on) this.store.nodes.cordon(name, now);
      else this.store.nodes.uncordon(name);
    });
    for (const node of this.live.nodeList()) {
      if (node.name === name) node.draining = on || this.store.nodes.get(node.id)?.state === 'DRAINING';
    }
    this.log.info({ name }, on ? 'node cordoned' : 'node uncordoned');
    this.requestSchedule();
  }

  /** Forget a node whose agent is gone (its lost registrations and its cordon); returns how many registrations. */
  forgetNode(name: string): number {
    if (this.live.nodeList().some((n) => n.name === name)) {
      throw new RaysubError('NODE_ALIVE', `node ${name} has a live agent: stop it first (raysub node drain ${name}, then stop its agent), or it would be known again at its next heartbeat`);
    }
    this.setCordon(name, false);
    return this.transact(() => this.store.nodes.forgetName(name));
  }

  /** Declare a node lost now: its tasks are retried elsewhere or fail. False if it was not alive. */
  nodeLost(nodeId: string, reason: string, now = Date.now()): boolean {
    const node = this.live.nodes.get(nodeId);
    if (!node) return false;
    this.transact(() => {
      this.tx.touch();
      this.markLost(node, reason, now);
    });
    this.requestSchedule();
    return true;
  }

  /** Declare lost every node whose lease lapsed before `now`; forget nodes lost a day ago. */
  expireLeases(now: number): void {
    for (const node of this.live.nodeList()) {
      if (node.leaseUntil >= now) continue;
      this.log.warn({ nodeId: node.id, name: node.name }, 'node missed its heartbeats: declared lost');
      this.nodeLost(node.id, `node ${node.name} stopped sending heartbeats`, now);
    }
    this.store.nodes.forgetLost(now - 24 * 3600_000);
  }

  private markLost(node: LiveNode, reason: string, now: number, state: 'LOST' | 'GONE' = 'LOST'): void {
    this.store.nodes.setState(node.id, state);
    for (const id of [...node.running]) {
      const t = this.live.tasks.get(id);
      if (t) this.settler.endAttempt(t, 'lost', null, null, reason, now);
    }
    this.retired.set(node.id, node);
    this.live.nodes.delete(node.id);
    this.announce('nodeLost', node.id);
    this.announce('wake', node.id);
  }

  /** Ask a node's parked poll to answer now. */
  wakeNode(nodeId: string): void {
    this.announce('wake', nodeId);
  }

  // ---- in-job work (memory only: in-job tasks die with their job) ----

  /** What a node's agent reports its in-job work holds. */
  setInjobUsage(nodeId: string, usage: Usage): void {
    const node = this.live.nodes.get(nodeId);
    if (node) this.live.setInjobUsage(node, usage);
  }

  /** Hold resources on a node for an in-job task placed there, until `releaseInjob(key)`. */
  holdInjob(nodeId: string, key: string, req: TaskRequest, gpuIds: readonly number[]): void {
    const node = this.live.nodes.get(nodeId);
    if (node) this.live.holdInjob(node, key, req, gpuIds);
  }

  releaseInjob(nodeId: string, key: string): void {
    const node = this.live.nodes.get(nodeId);
    if (node) this.live.releaseInjob(node, key);
  }
}
