/**
 * What a job's processes ask of their agent beyond running tasks: killing, releasing and
 * cancelling (here, or through the head where the actor or task is elsewhere), questions about the
 * cluster and the job's shared state, and the placement group bundles the head reserves here.
 */
import { guarded, runGuarded } from '../../shared/boundary.js';
import type { Logger } from '../../shared/log.js';
import type { ClientCall, InjobDelivery, RefInfo, Usage } from '../../shared/protocol/index.js';
import { applyPlacement, fromUnits, toUnits, UNLIMITED_TASK_SLOTS, type Capacity } from '../../shared/resources.js';
import type { Executor } from './executor.js';
import type { JobConn, JobState, Task } from './jobState.js';
import type { NodeLedger } from './ledger.js';
import { cancelledValue } from './objects.js';
import type { Relay } from './relay.js';
import { describeUsage, Requests, type ClusterNode } from './requests.js';

export interface ControlDeps {
  executor: Executor;
  ledger: NodeLedger;
  relay: Relay;
  log: Logger;
  me(): string;
  /** Wake the report loop: there is in-job traffic for the head. */
  wake(): void;
  job(jobId: string): JobState | undefined;
}

/** The head's last view of the cluster (from a report's answer). */
export interface ClusterView {
  nodes: { node_id: string; name: string; address: string; total: Usage }[];
  free: Record<string, Usage>;
}

type BundleDelivery = Extract<InjobDelivery, { type: 'bundle' }>;

export const bundleKey = (group: string, index: number): string => `${group}:${index}`;

export class Control {
  readonly requests: Requests;
  view: ClusterView = { nodes: [], free: {} };

  constructor(private readonly d: ControlDeps) {
    this.requests = new Requests({
      log: d.log,
      toHead: (r) => {
        d.relay.push('requests', r);
        d.wake();
      },
      cluster: () => this.cluster(),
      limitCpus: (jobId, cpus) => {
        const job = d.job(jobId);
        if (!job) return;
        job.cpuLimit = toUnits(cpus);
        d.executor.pump();
      },
      cpuLimit: (jobId) => {
        const job = d.job(jobId);
        if (!job || job.cpuLimit === null) return null;
        return { limit: fromUnits(job.cpuLimit), free: Math.max(0, fromUnits(job.cpuLimit - d.ledger.cpusHeldBy(jobId))) };
      },
    });
  }

  request(conn: JobConn, reqId: number, call: ClientCall, payload: Buffer): void {
    const target = {
      reply: (id: number, body: { ok: boolean; value?: unknown; error?: { type: 'ValueError' | 'ActorAlreadyExistsError' | 'RaySystemError'; message: string } }, data?: Buffer) =>
        conn.send({ t: 'reply', req_id: id, ...body }, data),
      get closed() {
        return conn.closed;
      },
    };
    this.requests.ask(conn.job.jobId, target, reqId, call, payload);
  }

  private cluster(): ClusterNode[] {
    return this.view.nodes.map((n) => {
      const free = this.view.free[n.node_id];
      return { node_id: n.node_id, name: n.name, alive: true, address: n.address, total: describeUsage(n.total), free: free ? describeUsage(free) : describeUsage(n.total) };
    });
  }

  /** Kill an actor: here if it lives here, else through the head. */
  kill(job: JobState, actorId: string, owner: string, restart: boolean): void {
    if (this.d.executor.actors.kill(job, actorId, restart)) return;
    this.d.relay.push('kill_actors', { job_id: job.jobId, actor_id: actorId, owner, ...(restart ? { restart } : {}) });
    this.d.wake();
  }

  /**
   * A process dropped its last reference to objects and actors it made. An object goes once no
   * task here still needs it as an argument (ObjectTable.release); an actor ends once the calls
   * sent to it before have run (after them in its calls' chain).
   */
  release(job: JobState, objects: readonly string[], actors: readonly string[]): void {
    job.objects.release(objects);
    for (const aid of actors) {
      const prev = job.callChains.get(aid) ?? Promise.resolve();
      const next = prev.then(() => this.releaseActor(job, aid));
      job.callChains.set(aid, next.catch((err: unknown) => this.d.log.error({ err, job: job.jobId }, 'releasing an actor failed')));
    }
  }

  private async releaseActor(job: JobState, aid: string): Promise<void> {
    const home = await (job.actorHome.get(aid) ?? Promise.resolve(job.actors.has(aid) ? ('local' as const) : null));
    if (job.ended || home === null) return;
    if (home === 'local') return this.releaseHere(job, aid);
    this.d.relay.push('kill_actors', { job_id: job.jobId, actor_id: aid, owner: this.d.me(), graceful: true });
    this.d.wake();
  }

  /** Release an actor living (or about to be created) here. */
  releaseHere(job: JobState, aid: string): void {
    if (this.d.executor.actors.release(job, aid)) return;
    // Its creation is queued here: it ends once created and idle.
    if (job.live.has(aid)) job.releasedActors.add(aid);
  }

  /** Cancel a task: here if it was taken in here, else where the head sent it. */
  cancel(job: JobState, ref: RefInfo, force: boolean): void {
    const task = job.live.get(ref.id);
    if (task) return this.cancelHere(task, force);
    if (!job.handedOff.has(ref.id) && (ref.owner === '' || ref.owner === this.d.me())) return;
    this.d.relay.push('cancels', { job_id: job.jobId, id: ref.id, force });
    this.d.wake();
  }

  /**
   * Cancel a task taken in here: if it is queued it never runs, if it runs its worker is asked to
   * stop it (`force`: the worker is killed); either way its object is TaskCancelledError. An
   * actor's calls are never killed by force (their actor would die with them).
   */
  cancelHere(task: Task, force: boolean): void {
    const ex = this.d.executor;
    if (task.cancelled || task.spec.kind === 'actor_create') return;
    task.cancelled = { force: force && task.spec.kind === 'task' };
    if (task.spec.kind === 'actor_call') return void ex.actors.cancel(task.job, task.spec.actor_id ?? '', task.spec.id);
    if (ex.dequeue(task)) return ex.finish(task, cancelledValue(task));
    const w = task.worker;
    if (w && w.task === task) ex.cancelRunning(w, task, task.cancelled.force);
    // Else it waits for its arguments or its worker: it is dropped when it would start.
  }

  /** A kill or a cancellation the head passed on to this node. */
  delivered(m: Extract<InjobDelivery, { type: 'kill_actor' | 'cancel' }>): void {
    const job = this.d.job(m.job_id);
    if (!job) return;
    if (m.type === 'cancel') {
      const task = job.live.get(m.id);
      if (task) this.cancelHere(task, m.force);
    } else if (m.graceful) this.releaseHere(job, m.actor_id);
    else this.d.executor.actors.kill(job, m.actor_id, m.restart === true);
  }

  /** The head reserves (or gives back) a placement group's bundle here. */
  bundle(job: JobState, m: BundleDelivery): void {
    const key = bundleKey(m.group, m.index);
    const had = job.bundles.get(key);
    if (m.reserve) {
      if (had) return;
      // The head placed it on its view of this node: taken even if that briefly oversubscribes it.
      const holding = this.d.ledger.take(m.resources, job.jobId, m.gpu_ids);
      // Its tasks' slots are the node's (taken as they start), not the bundle's.
      const free: Capacity = { cpus: 0, memory: 0, gpus: this.d.ledger.totals.gpus.map(() => 0), custom: {}, tasks: UNLIMITED_TASK_SLOTS };
      applyPlacement(free, m.resources, m.gpu_ids, 1);
      job.bundles.set(key, { job, group: m.group, index: m.index, holding, free });
      this.d.relay.push('bundles', { job_id: job.jobId, group: m.group, index: m.index });
      this.d.wake();
    } else if (had) {
      job.bundles.delete(key);
      this.d.ledger.release(had.holding);
      // Its actors end with it; tasks still running in it finish (their resources go with the bundle).
      for (const a of [...job.actors.values()]) {
        if (a.creation.bundle === had) runGuarded(this.d.log, 'ending an actor of a removed placement group', () => this.d.executor.actors.died(a, 'its placement group was removed'));
      }
    }
    setImmediate(guarded(this.d.log, 'in-job queue', () => this.d.executor.pump()));
  }

  close(): void {
    this.requests.close();
  }
}
