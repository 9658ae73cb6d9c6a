/**
 * The head's part of the in-job task API, all in memory (in-job tasks die with their job):
 * placement of the tasks an agent could not run itself, delivery of results to their owner's node,
 * a directory of actors so calls from other nodes reach them, the agents' object-server addresses,
 * and in-job task counts per job. Each node's ledger here follows what its agent reports it holds.
 */
import type { Logger } from '../shared/log.js';
import type { InjobErrorName, InjobAnswer, InjobCounts, InjobDelivery, InjobPoll, InjobReport, RelayTask } from '../shared/protocol/index.js';
import { jobContextOf } from './jobContext.js';
import type { Store } from './db/index.js';
import type { Engine } from './engine.js';
import { placeInjob } from './placement.js';
import { formatBytes } from '../shared/resources.js';
import { InjobDirectory, READY_VALUE } from './injobDirectory.js';
import { deliveryBytes, deliveryJob, taskBytes } from './injobDelivery.js';
import { clusterView, freeView, nodeImbalance } from './injobViews.js';

interface Placed {
  task: RelayTask;
  nodeId: string;
}

interface Outgoing {
  seq: number;
  items: { seq: number; msg: InjobDelivery; bytes: number }[];
}

const MiB = 1024 * 1024;
/** What the head holds for one job's in-job traffic at once (tasks waiting for a node, deliveries not yet taken): past it the job fails. */
export const MAX_HEAD_JOB_BYTES = 64 * MiB;
/** Per job, how many task submissions are remembered to drop a resent report's copies. */
const SEEN_KEPT = 100_000;
/** Actor calls relayed through the head, remembered (newest) so a cancellation can follow them. */
const CALLS_KEPT = 100_000;
/** One poll answer's deliveries (the rest come with the next poll, at once). */
const MAX_POLL_BYTES = 8 * MiB;

const emptyCounts = (): InjobCounts => ({ pending: 0, running: 0, finished: 0, failed: 0, actors_alive: 0, actors_dead: 0 });
const key = (job: string, id: string): string => `${job}\u0000${id}`;

export class InjobHub {
  private queue: RelayTask[] = [];
  private readonly placed = new Map<string, Placed>();
  private readonly actors = new Map<string, string>();
  private readonly waitingForActor = new Map<string, InjobDelivery[]>();
  private readonly outgoing = new Map<string, Outgoing>();
  private readonly counts = new Map<string, Map<string, InjobCounts>>();
  private readonly jobsOnNode = new Map<string, Set<string>>();
  /** Per job, the newest tasks already taken in (a resent report carries them again). */
  private readonly seen = new Map<string, Set<string>>();
  private readonly addresses = new Map<string, string>();
  /** Per job, bytes of its in-job traffic the head holds now. */
  private readonly held = new Map<string, number>();
  /** Named actors and placement groups, per job. */
  private readonly directory: InjobDirectory;
  /** The actor of each actor call relayed here (newest CALLS_KEPT), by job and call id. */
  private readonly calls = new Map<string, string>();

  constructor(
    private readonly engine: Engine,
    private readonly store: Store,
    private readonly log: Logger,
  ) {
    engine.on('job', (jobId, status) => {
      if (status === 'PENDING' || status === 'RUNNING') return;
      // The last counts are kept with the job in SQLite (only for jobs that ran in-job work).
      const final = this.countsOf(jobId);
      if (final) this.store.jobs.setInjobCounts(jobId, JSON.stringify(final));
      this.forgetJob(jobId);
    });
    engine.on('stopping', (jobId) => this.jobStopping(jobId));
    engine.on('nodeLost', (nodeId) => this.nodeLost(nodeId));
    this.directory = new InjobDirectory({
      nodes: () => this.engine.view.nodeList().filter((n) => !n.draining && n.unhealthy === null).map((n) => ({ id: n.id, free: n.free })),
      hold: (nodeId, k, req, gpuIds) => this.engine.holdInjob(nodeId, k, req, gpuIds),
      release: (nodeId, k) => this.engine.releaseInjob(nodeId, k),
      bundle: (g, index, reserve) => {
        const spot = g.spots?.[index];
        const req = g.bundles[index];
        if (!spot || !req) return;
        this.deliver(spot.nodeId, { type: 'bundle', job_id: g.jobId, group: g.id, index, resources: req, gpu_ids: spot.gpuIds, reserve, job: jobContextOf(g.jobId, this.engine.view.job(g.jobId)) }, true);
      },
      ready: (g) => {
        if (!this.engine.view.node(g.ownerNode)) return;
        this.deliver(g.ownerNode, { type: 'result', result: { job_id: g.jobId, id: g.id, owner_node: g.ownerNode, value: { kind: 'inline', data: READY_VALUE } } }, true);
      },
    });
  }

  /** Whether in-job work of this job may go on (not stopped, not failing, not over). */
  private live(jobId: string): boolean {
    const j = this.engine.view.job(jobId);
    return Boolean(j && !j.stopRequested && j.failedTask === null);
  }

  /** A job stops or fails: wake every node holding its in-job work, so it hears at once. */
  private jobStopping(jobId: string): void {
    for (const [nodeId, jobs] of this.jobsOnNode) if (jobs.has(jobId)) this.engine.wakeNode(nodeId);
  }

  private forgetJob(jobId: string): void {
    this.queue = this.queue.filter((t) => t.job_id !== jobId);
    for (const [k, p] of this.placed) if (p.task.job_id === jobId) this.release(p, k);
    for (const k of [...this.actors.keys()]) if (k.startsWith(`${jobId}\u0000`)) this.actors.delete(k);
    for (const k of [...this.waitingForActor.keys()]) if (k.startsWith(`${jobId}\u0000`)) this.waitingForActor.delete(k);
    for (const out of this.outgoing.values()) out.items = out.items.filter((i) => deliveryJob(i.msg) !== jobId);
    this.held.delete(jobId);
    this.directory.forgetJob(jobId);
    for (const k of [...this.calls.keys()]) if (k.startsWith(`${jobId}\u0000`)) this.calls.delete(k);
    this.counts.delete(jobId);
    this.seen.delete(jobId);
    this.jobStopping(jobId);
  }

  /**
   * Count `bytes` more of a job's traffic as held here. Past MAX_HEAD_JOB_BYTES the job fails
   * (or, for what may be dropped, like worker output, the traffic is dropped): false.
   */
  private hold(jobId: string, bytes: number, failOver = true): boolean {
    const now = (this.held.get(jobId) ?? 0) + bytes;
    if (now > MAX_HEAD_JOB_BYTES) {
      const why = `its in-job traffic waiting on the head would hold ${formatBytes(now)}; a job's is at most ${formatBytes(MAX_HEAD_JOB_BYTES)}`;
      if (failOver && this.engine.failJob(jobId, 'INJOB_LIMIT_EXCEEDED', why)) this.log.info({ job: jobId }, why);
      return false;
    }
    this.held.set(jobId, now);
    return true;
  }

  private unhold(jobId: string, bytes: number): void {
    const left = (this.held.get(jobId) ?? 0) - bytes;
    if (this.held.has(jobId)) this.held.set(jobId, Math.max(0, left));
  }

  /** Queue a delivery for a node (counted against its job until the node acknowledges it). */
  private deliver(nodeId: string, msg: InjobDelivery, counted = false): void {
    const bytes = deliveryBytes(msg);
    if (!counted && !this.hold(deliveryJob(msg), bytes, msg.type !== 'log')) return;
    let out = this.outgoing.get(nodeId);
    if (!out) this.outgoing.set(nodeId, (out = { seq: 0, items: [] }));
    out.items.push({ seq: ++out.seq, msg, bytes });
    this.engine.wakeNode(nodeId);
  }

  private toActor(jobId: string, actorId: string, msg: InjobDelivery): void {
    const k = key(jobId, actorId);
    const node = this.actors.get(k);
    if (node) return this.deliver(node, msg);
    if (!this.hold(jobId, deliveryBytes(msg))) return;
    const list = this.waitingForActor.get(k) ?? [];
    list.push(msg);
    this.waitingForActor.set(k, list);
  }

  private locateActor(jobId: string, actorId: string, nodeId: string): void {
    const k = key(jobId, actorId);
    this.actors.set(k, nodeId);
    for (const msg of this.waitingForActor.get(k) ?? []) this.deliver(nodeId, msg, true);
    this.waitingForActor.delete(k);
  }

  /**
   * A report's in-job task counts, taken in before its task events: the event that ends a job
   * comes in the same report as the counts of its last in-job tasks, and the job's final counts
   * are kept when it ends. A report that trails its job's end is not taken in again.
   */
  counted(nodeId: string, r: InjobReport): void {
    for (const [jobId, c] of Object.entries(r.counts)) {
      if (!this.engine.view.job(jobId)) continue;
      let m = this.counts.get(jobId);
      if (!m) this.counts.set(jobId, (m = new Map<string, InjobCounts>()));
      m.set(nodeId, c);
    }
  }

  report(nodeId: string, r: InjobReport): InjobAnswer {
    if (r.address) this.addresses.set(nodeId, r.address);
    this.engine.setInjobUsage(nodeId, r.usage);
    this.jobsOnNode.set(nodeId, new Set(r.jobs));
    // Taken in: the node's reported usage covers it from now on.
    for (const t of r.received) if (this.placedOn(nodeId, t.job_id, t.id)) this.engine.releaseInjob(nodeId, key(t.job_id, t.id));
    for (const t of r.done) {
      const p = this.placedOn(nodeId, t.job_id, t.id);
      if (p) this.release(p, key(t.job_id, t.id));
    }
    for (const a of r.actors) this.locateActor(a.job_id, a.actor_id, nodeId);
    for (const a of r.actors_gone) this.directory.actorGone(a.job_id, a.actor_id);
    for (const b of r.bundles) this.directory.bundleHeld(nodeId, b.job_id, b.group, b.index);
    const replies = r.requests.map((q) =>
      this.live(q.job_id) ? this.directory.answer(q.job_id, q.req, q.call, nodeId) : { req: q.req, ok: false, error: { type: 'RaySystemError' as const, message: 'the job is over' } },
    );
    for (const t of r.submit) {
      if (!this.live(t.job_id)) continue;
      const seenKey = `${t.spec.id}\u0000${t.attempt}`;
      let seen = this.seen.get(t.job_id);
      if (!seen) this.seen.set(t.job_id, (seen = new Set()));
      if (seen.has(seenKey)) continue;
      seen.add(seenKey);
      // A resent report follows the one it repeats: the newest entries are the ones that matter.
      if (seen.size > SEEN_KEPT) seen.delete(seen.values().next().value ?? seenKey);
      if (t.spec.kind === 'actor_call') this.routeCall(t);
      else if (this.hold(t.job_id, taskBytes(t))) this.queue.push(t);
    }
    for (const res of r.results) if (this.engine.view.node(res.owner_node)) this.deliver(res.owner_node, { type: 'result', result: res });
    for (const k of r.kill_actors) {
      this.toActor(k.job_id, k.actor_id, { type: 'kill_actor', job_id: k.job_id, actor_id: k.actor_id, ...(k.graceful ? { graceful: true } : {}), ...(k.restart ? { restart: true } : {}) });
    }
    for (const c of r.cancels) this.cancel(c.job_id, c.id, c.force);
    for (const l of r.logs) {
      const driver = this.engine.view.tasksOfJob(l.job_id).find((t) => t.state === 'RUNNING' && t.nodeId);
      if (driver?.nodeId) this.deliver(driver.nodeId, { type: 'log', job_id: l.job_id, data: l.data });
    }
    for (const f of r.failed) {
      if (this.engine.failJob(f.job_id, 'INJOB_LIMIT_EXCEEDED', f.message)) this.log.info({ job: f.job_id, node: nodeId }, `in-job traffic over a limit: ${f.message}`);
    }
    this.directory.place();
    this.place();
    const off = this.imbalance(nodeId);
    if (off) this.log.error({ node: nodeId, off }, 'resource invariant broken: free + held != total');
    return { ended: r.jobs.filter((j) => !this.live(j)), nodes: Object.fromEntries(this.liveAddresses()), free: freeView(this.engine.view), cluster: clusterView(this.engine.view, this.addresses), replies };
  }

  /** A node's invariant on the head (injobViews.ts): null when it holds, else what differs. */
  imbalance(nodeId: string): string | null {
    return nodeImbalance(this.engine.view, nodeId);
  }

  private placedOn(nodeId: string, jobId: string, id: string): Placed | null {
    const p = this.placed.get(key(jobId, id));
    return p && p.nodeId === nodeId ? p : null;
  }

  private routeCall(t: RelayTask): void {
    const actorId = t.spec.actor_id ?? '';
    this.rememberCall(t.job_id, t.spec.id, actorId);
    this.toActor(t.job_id, actorId, { type: 'task', task: t, job: jobContextOf(t.job_id, this.engine.view.job(t.job_id)) });
  }

  private release(p: Placed, k: string): void {
    if (!this.placed.delete(k)) return;
    this.engine.releaseInjob(p.nodeId, k);
  }

  /** Place queued tasks on nodes that hold their resources now (the most free CPUs first). */
  place(): void {
    if (this.queue.length === 0) return;
    const waiting: RelayTask[] = [];
    for (const t of this.queue) {
      const job = this.engine.view.job(t.job_id);
      if (!job || !this.live(t.job_id)) continue;
      const req = t.spec.resources;
      const where = t.spec.placement;
      if (where && 'group' in where) {
        const step = this.toBundle(t, where.group, where.bundle);
        if (step === 'wait') waiting.push(t);
        continue;
      }
      let choice = placeInjob(this.engine.view, job, req, where?.node);
      if (where && where.soft && choice.kind !== 'placed') choice = placeInjob(this.engine.view, job, req);
      if (choice.kind === 'never') {
        this.unhold(t.job_id, taskBytes(t));
        this.fail(t, 'UnschedulableError', `${t.spec.name}: ${choice.reason}`);
        continue;
      }
      if (choice.kind === 'wait') {
        waiting.push(t);
        continue;
      }
      // Ids are chosen by jobs: unique only within a job, so every key names the job too.
      const k = key(t.job_id, t.spec.id);
      this.engine.holdInjob(choice.nodeId, k, req, choice.gpuIds);
      this.placed.set(k, { task: t, nodeId: choice.nodeId });
      // The creation goes out before any call waiting for the actor.
      this.deliver(choice.nodeId, { type: 'task', task: t, job: jobContextOf(t.job_id, this.engine.view.job(t.job_id)) }, true);
      if (t.spec.kind === 'actor_create') this.locateActor(t.job_id, t.spec.actor_id ?? t.spec.id, choice.nodeId);
    }
    this.queue = waiting;
  }

  /**
   * A task of a placement group goes to the node of its bundle (any of the group's for -1), whose
   * reservation covers its resources; it waits while the group is not placed yet.
   */
  private toBundle(t: RelayTask, group: string, bundle: number): 'sent' | 'wait' | 'failed' {
    if (!this.directory.hasGroup(t.job_id, group)) {
      this.unhold(t.job_id, taskBytes(t));
      this.fail(t, 'TaskPlacementGroupRemoved', `the placement group of ${t.spec.name} does not exist (it was removed)`);
      return 'failed';
    }
    const nodeId = this.directory.bundleNode(t.job_id, group, bundle);
    if (!nodeId) return 'wait';
    this.placed.set(key(t.job_id, t.spec.id), { task: t, nodeId });
    this.deliver(nodeId, { type: 'task', task: t, job: jobContextOf(t.job_id, this.engine.view.job(t.job_id)) }, true);
    if (t.spec.kind === 'actor_create') this.locateActor(t.job_id, t.spec.actor_id ?? t.spec.id, nodeId);
    return 'sent';
  }

  /** Cancel a task an agent handed to the head: dropped if it waits here, else passed to where it went. */
  private cancel(jobId: string, id: string, force: boolean): void {
    const k = key(jobId, id);
    const i = this.queue.findIndex((t) => t.job_id === jobId && t.spec.id === id);
    const queued = i >= 0 ? this.queue.splice(i, 1)[0] : undefined;
    if (queued) {
      this.unhold(jobId, taskBytes(queued));
      return this.fail(queued, 'TaskCancelledError', `${queued.spec.name} was cancelled`);
    }
    const p = this.placed.get(k);
    if (p) return this.deliver(p.nodeId, { type: 'cancel', job_id: jobId, id, force });
    const call = this.calls.get(k);
    if (call) this.toActor(jobId, call, { type: 'cancel', job_id: jobId, id, force });
  }

  private fail(t: RelayTask, type: InjobErrorName, message: string): void {
    this.log.info({ job: t.job_id, task: t.spec.name }, message);
    if (!this.engine.view.node(t.owner_node)) return;
    this.deliver(t.owner_node, {
      type: 'result',
      result: { job_id: t.job_id, id: t.spec.id, owner_node: t.owner_node, value: { kind: 'error', error: { type, message, traceback: '', task: t.spec.name }, data: '' } },
    });
  }

  /** A node is gone (its holdings went with it): its tasks are retried elsewhere or fail; its actors are dead. */
  private nodeLost(nodeId: string): void {
    for (const [k, p] of [...this.placed]) {
      if (p.nodeId !== nodeId) continue;
      this.placed.delete(k);
      const t = p.task;
      const retries = t.spec.max_retries;
      if (t.spec.kind === 'task' && (retries < 0 || t.attempt <= retries)) {
        if (this.hold(t.job_id, taskBytes(t))) this.queue.push({ ...t, attempt: t.attempt + 1 });
      } else this.fail(t, t.spec.kind === 'task' ? 'WorkerCrashedError' : 'ActorDiedError', `the node running ${t.spec.name} was lost`);
    }
    for (const [k, n] of [...this.actors]) if (n === nodeId) this.actors.delete(k);
    this.directory.nodeLost(nodeId);
    for (const i of this.outgoing.get(nodeId)?.items ?? []) this.unhold(deliveryJob(i.msg), i.bytes);
    this.outgoing.delete(nodeId);
    this.jobsOnNode.delete(nodeId);
    this.addresses.delete(nodeId);
    this.place();
  }

  /** Deliveries for a node's poll, after dropping what it acknowledged. */
  poll(nodeId: string, ack: number | undefined, jobs: readonly string[] | undefined): InjobPoll {
    const out = this.outgoing.get(nodeId);
    if (out && ack !== undefined) {
      for (const i of out.items) if (i.seq <= ack) this.unhold(deliveryJob(i.msg), i.bytes);
      out.items = out.items.filter((i) => i.seq > ack);
    }
    const deliveries: InjobPoll['deliveries'] = [];
    let bytes = 0;
    for (const i of out?.items ?? []) {
      if (deliveries.length >= 5000 || (deliveries.length > 0 && bytes + i.bytes > MAX_POLL_BYTES)) break;
      bytes += i.bytes;
      deliveries.push({ seq: i.seq, msg: i.msg });
    }
    return { deliveries, ended: (jobs ?? []).filter((j) => !this.live(j)) };
  }

  /** Live counts of a running job's in-job work (null if it has none). */
  countsOf(jobId: string): InjobCounts | null {
    const m = this.counts.get(jobId);
    const queued = this.queue.filter((t) => t.job_id === jobId && t.spec.kind === 'task').length;
    if (!m && queued === 0) return null;
    const sum = emptyCounts();
    sum.pending = queued;
    for (const c of m?.values() ?? []) for (const k of Object.keys(sum) as (keyof InjobCounts)[]) sum[k] += c[k];
    // A job that submitted nothing (agents report zeros for every job they run) has none: nothing to show, nor to keep when it ends.
    return Object.values(sum).some((n) => n > 0) ? sum : null;
  }

  /** The HTTP address of a node's agent (its object server), once the agent has said it. */
  addressOf(nodeId: string): string | null {
    return this.addresses.get(nodeId) ?? null;
  }

  private rememberCall(jobId: string, id: string, actorId: string): void {
    this.calls.set(key(jobId, id), actorId);
    if (this.calls.size > CALLS_KEPT) this.calls.delete(this.calls.keys().next().value ?? '');
  }

  private liveAddresses(): [string, string][] {
    return [...this.addresses].filter(([id]) => this.engine.view.node(id));
  }

}
