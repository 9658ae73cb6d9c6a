/**
 * The agent's in-job task API: one socket per job for its processes, the executor that runs their
 * tasks here, the relay of what it cannot place to the head (and of results back to their
 * owners), and the other agents (peers.ts).
 */
import fs from 'node:fs';
import { guarded } from '../../shared/boundary.js';
import {
  returnId,
  type Assignment,
  type InjobAnswer,
  type InjobPoll,
  type InjobReport,
  type JobContext,
  type TaskRef,
  type Usage,
} from '../../shared/protocol/index.js';
import type { Logger } from '../../shared/log.js';
import type { Outbox } from '../outbox.js';
import { acceptTask } from './accept.js';
import { Clients, taskCost } from './clients.js';
import { Control } from './control.js';
import { Executor } from './executor.js';
import { JobState, pinArgs, relayArgs, unpinArgs, type Task } from './jobState.js';
import { NodeLedger, type Holding } from './ledger.js';
import { MAX_RELAYED_INLINE_BYTES } from './limits.js';
import { workerOutput } from './workerOutput.js';
import { closeShmPool, openShmPool, type ShmPool } from './objectDirs.js';
import { fromRelay, type ObjValue } from './objects.js';
import { Peers } from './peers.js';
import { othersFree } from './taskPlacement.js';
import { Relay } from './relay.js';
import { injobEnv, type LaunchDeps } from './workerLaunch.js';
import { injobDirOf } from '../workspace.js';

const ENDED_KEPT = 10_000;

export interface InjobServiceDeps extends LaunchDeps {
  workDir: string;
  /** What agents present to each other's object servers (the head hands it out at registration). */
  token: () => string;
  outbox: Outbox;
  killGraceMs: number;
  log: Logger;
  totals: { num_cpus: number; num_gpus: number; memory: number; resources: Record<string, number>; task_slots?: number | undefined };
  nodeName: string;
  /** Wake the report loop: there is in-job traffic for the head. */
  wake: () => void;
  /** The shared-memory object store: its tmpfs directory (null: none) and what its objects may fill. */
  objectStore: { dir: string | null; memory: number; hugePages: boolean };
}

export class InjobService {
  readonly ledger: NodeLedger;
  readonly executor: Executor;
  readonly relay = new Relay();
  private readonly jobs = new Map<string, JobState>();
  /** Jobs whose in-job state ended here, newest last: late deliveries for them are dropped. */
  private readonly endedJobs = new Set<string>();
  private readonly peers: Peers;
  private free: Record<string, Usage> = {};
  private viewTimer: NodeJS.Timeout | null = null;
  private readonly root: string;
  private readonly clients: Clients;
  private readonly control: Control;
  readonly shm: ShmPool;

  constructor(private readonly d: InjobServiceDeps) {
    this.root = injobDirOf(d.workDir);
    // Sockets and objects of a previous run of this agent belong to jobs it no longer serves.
    fs.rmSync(this.root, { recursive: true, force: true });
    this.shm = openShmPool(d.objectStore.dir, d.objectStore.memory, d.workDir, d.log, { hugePages: d.objectStore.hugePages });
    this.ledger = new NodeLedger(d.totals);
    this.executor = new Executor(this.ledger, d, {
      finished: (t, v) => this.finished(t, v),
      item: (t, id, v) => this.item(t, id, v),
      actorGone: (job, id) => {
        this.relay.push('actors_gone', { job_id: job.jobId, actor_id: id });
        this.d.wake();
      },
      spill: (t) => this.spill(t),
      actorPlaced: (job, id) => {
        this.relay.push('actors', { job_id: job.jobId, actor_id: id });
        this.d.wake();
      },
      output: (job, stream, data) => this.output(job, stream, data),
      remoteFree: () => othersFree(this.free, this.me()),
      allWorkers: () => [...this.jobs.values()].flatMap((j) => [...j.workers]),
      waiting: () => {
        // The head's view of other nodes comes with each report's answer; while tasks wait here
        // that another node could take, refresh it often (it was maybe taken while they were busy).
        if (this.viewTimer) return;
        this.viewTimer = setTimeout(
          guarded(d.log, 'in-job view refresh', () => {
            this.viewTimer = null;
            this.d.wake();
          }),
          100,
        );
      },
    }, d.killGraceMs, d.log);
    this.peers = new Peers(d.token, d.log, () => this.me(), (id) => this.jobs.get(id));
    this.clients = new Clients({
      executor: this.executor,
      log: d.log,
      me: () => this.me(),
      accept: (t) => acceptTask(t, { executor: this.executor, log: d.log, toHead: (x) => this.toHead(x) }),
      kill: (job, actorId, owner, restart) => this.control.kill(job, actorId, owner, restart),
      request: (conn, reqId, call, payload) => this.control.request(conn, reqId, call, payload),
      release: (job, objects, actors) => this.control.release(job, objects, actors),
      cancel: (job, ref, force) => this.control.cancel(job, ref, force),
    });
    this.control = new Control({ executor: this.executor, ledger: this.ledger, relay: this.relay, log: d.log, me: () => this.me(), wake: () => this.d.wake(), job: (id) => this.jobs.get(id) });
  }

  private me(): string {
    return this.d.nodeId();
  }

  async start(host: string): Promise<void> {
    await this.peers.start(host);
  }

  get address(): string | null {
    return this.peers.address;
  }

  private async job(jobId: string, ctx: JobContext): Promise<JobState> {
    let job = this.jobs.get(jobId);
    if (!job) {
      job = new JobState(jobId, ctx, this.root, {
        nodeId: () => this.me(),
        fetchRemote: (node, id, dest) => this.peers.fetchRemote(jobId, node, id, dest),
        askOwner: (owner, id) => this.peers.askOwner(jobId, owner, id),
        freeRemote: (node, id) => this.peers.freeRemote(jobId, node, id),
        shm: this.shm,
        over: (j, why) => this.over(j, why),
        log: this.d.log.child({ job: jobId }),
      });
      this.jobs.set(jobId, job);
      await job.listen(this.clients);
    }
    return job;
  }

  /**
   * A job went over one of its limits here: its processes hear why, everything it holds here goes
   * now, and the head fails it (INJOB_LIMIT_EXCEEDED) in the next report, which goes at once.
   */
  private over(job: JobState, why: string): void {
    this.d.log.warn({ job: job.jobId, why }, 'a job went over its in-job limits; failing it');
    this.relay.push('failed', { job_id: job.jobId, message: `its in-job traffic went over a limit on node ${this.d.nodeName}: ${why}`.slice(0, 4000) });
    for (const c of job.conns) c.refuse('LIMIT_EXCEEDED', why);
    setImmediate(guarded(this.d.log, 'ending a job over its limits', () => this.ended([job.jobId])));
    this.d.wake();
  }

  /** A job task is about to start here: give it the socket, token and libraries. */
  async attach(a: Assignment, ref: TaskRef, env: Record<string, string>): Promise<{ env: Record<string, string>; paths: string[]; writable: string[]; detach: () => void }> {
    const job = await this.job(a.job.job_id, a.job);
    job.drivers.push(ref);
    const api = injobEnv(job, this.d.libs, env);
    return {
      ...api,
      detach: () => {
        const i = job.drivers.indexOf(ref);
        if (i >= 0) job.drivers.splice(i, 1);
      },
    };
  }

  /** Hold a job task's resources on this node's ledger, waiting while in-job work holds them. */
  holdJobTask(a: Assignment, signal: AbortSignal): Promise<() => void> {
    const fits = (): Holding | null => this.ledger.tryTake(a.resources, null, a.gpu_ids);
    return this.executor.holdJobTask(fits, signal).then((h) => () => {
      this.ledger.release(h);
      this.executor.pump();
    });
  }

  /** The task leaves this agent's hands (done here, or handed on): what it held of the job's share goes back. */
  private settled(task: Task): void {
    task.job.budget.release(task.charged);
    task.charged = 0;
  }

  private spill(task: Task): void {
    if (task.spec.kind === 'task') task.job.counts.pending = Math.max(0, task.job.counts.pending - 1);
    this.toHead(task);
  }

  /**
   * Hand a task to the head. Large arguments and inline dependencies past MAX_RELAYED_INLINE_BYTES
   * travel by location (files in this node's store that the node running it fetches); the task
   * holds its share of the job until the head has it.
   */
  private toHead(task: Task): void {
    task.decide?.('remote');
    const { job } = task;
    job.live.delete(task.spec.id);
    // Its arguments stay pinned here until its result comes back: the node running it fetches them from here.
    job.handedOff.set(task.spec.id, task.pinned ?? []);
    task.pinned = undefined;
    let inline = 0;
    const deps = [...task.deps].map(([id, v]) => {
      if (v.kind === 'inline' && (inline += v.data.length) > MAX_RELAYED_INLINE_BYTES) v = job.objects.toFile(id) ?? v;
      return { id, value: job.objects.toRelay(v) };
    });
    const item = { job_id: job.jobId, owner_node: task.ownerNode, lang: task.lang, spec: task.spec, args: relayArgs(task), deps, attempt: task.attempt };
    this.relay.push('submit', item, () => this.settled(task));
    this.d.wake();
  }

  private finished(task: Task, value: ObjValue): void {
    const { job, spec } = task;
    this.settled(task);
    // An actor's creation keeps its arguments: a restart runs it again with them.
    if (spec.kind !== 'actor_create') unpinArgs(task);
    if (job.live.get(spec.id) === task) job.live.delete(spec.id);
    if (spec.kind === 'actor_create') task.decide?.('local');
    // Recorded here whoever owns it: a large value stays in this node's store and is fetched from here.
    job.objects.resolve(spec.id, value);
    // A task of N returns: each of its objects is its value, or (failed) its error.
    const n = typeof spec.num_returns === 'number' && spec.num_returns !== 1 ? spec.num_returns : 0;
    for (let i = 0; i < n; i++) {
      const rid = returnId(spec.id, i);
      if (value.kind === 'error') job.objects.resolve(rid, value);
      const v = job.objects.get(rid);
      if (v) this.toOwner(task, rid, v);
    }
    if (task.origin === 'head') {
      this.toOwner(task, spec.id, value);
      this.relay.push('done', { job_id: job.jobId, id: spec.id });
      this.d.wake();
    }
  }

  /** One of a task's values before it finished (a generator's yield). */
  private item(task: Task, id: string, value: ObjValue): void {
    task.job.objects.resolve(id, value);
    const v = task.job.objects.get(id);
    if (v) this.toOwner(task, id, v);
  }

  /** A value of a task placed here by the head goes back to its owner's node. */
  private toOwner(task: Task, id: string, value: ObjValue): void {
    if (task.origin !== 'head' || task.ownerNode === this.me()) return;
    this.relay.push('results', { job_id: task.job.jobId, id, owner_node: task.ownerNode, value: task.job.objects.toRelay(value) });
    this.d.wake();
  }

  private output(job: JobState, stream: 'stdout' | 'stderr', data: Buffer): void {
    workerOutput(job, stream, data, { outbox: this.d.outbox, relay: this.relay, wake: () => this.d.wake() });
  }

  // ---- the head -------------------------------------------------------------------------------

  report(): InjobReport {
    const counts: InjobReport['counts'] = {};
    for (const [id, j] of this.jobs) counts[id] = { ...j.counts };
    return this.relay.take({ address: this.address, usage: this.ledger.injobUsage(), jobs: [...this.jobs.keys()], counts });
  }

  answered(ans: InjobAnswer | undefined): void {
    this.relay.sent();
    if (!ans) return;
    this.peers.nodes = ans.nodes;
    this.free = ans.free;
    if (ans.cluster) this.control.view = { nodes: ans.cluster, free: ans.free };
    this.control.requests.answered(ans.replies ?? []);
    this.ended(ans.ended);
    this.executor.pump();
  }

  reportFailed(): void {
    this.relay.unsent();
  }

  pollFields(): { injob_ack: number; injob_jobs: string[] } {
    return { injob_ack: this.relay.deliveredSeq, injob_jobs: [...this.jobs.keys()] };
  }

  async polled(p: InjobPoll | undefined): Promise<void> {
    if (!p) return;
    for (const { seq, msg } of p.deliveries) {
      if (seq <= this.relay.deliveredSeq) continue;
      this.relay.deliveredSeq = seq;
      if (msg.type === 'task') {
        // A delivery that crossed its job's end: the job's in-job state is gone here for good.
        if (this.endedJobs.has(msg.task.job_id)) continue;
        const job = await this.job(msg.task.job_id, msg.job);
        const t = msg.task;
        const deps = new Map(t.deps.map((d) => [d.id, fromRelay(d.value)]));
        const args = typeof t.args === 'string' ? Buffer.from(t.args, 'base64') : Buffer.alloc(0);
        const task: Task = { job, spec: t.spec, args, lang: t.lang, attempt: t.attempt, origin: 'head', ownerNode: t.owner_node, deps, holding: null, worker: null, dispatched: false, charged: taskCost(args) };
        if (typeof t.args !== 'string') task.argsFile = t.args;
        job.budget.hold(task.charged, `task ${t.spec.name}`);
        job.live.set(t.spec.id, task);
        pinArgs(task);
        this.relay.push('received', { job_id: t.job_id, id: t.spec.id });
        if (t.spec.kind === 'actor_call') this.executor.actors.call(task);
        else {
          if (t.spec.kind === 'task') job.counts.pending++;
          this.executor.enqueue(task);
        }
      } else if (msg.type === 'result') {
        const job = this.jobs.get(msg.result.job_id);
        if (job) {
          const pinned = job.handedOff.get(msg.result.id);
          job.handedOff.delete(msg.result.id);
          job.objects.resolve(msg.result.id, fromRelay(msg.result.value));
          if (pinned) job.objects.unpin(pinned);
        }
      } else if (msg.type === 'kill_actor' || msg.type === 'cancel') {
        this.control.delivered(msg);
      } else if (msg.type === 'bundle') {
        if (this.endedJobs.has(msg.job_id)) continue;
        this.control.bundle(await this.job(msg.job_id, msg.job), msg);
      } else {
        const job = this.jobs.get(msg.job_id);
        const driver = job?.drivers[0];
        if (driver) this.d.outbox.output(driver, 'stdout', Buffer.from(msg.data, 'base64'));
      }
    }
    this.d.wake();
    this.ended(p.ended);
  }

  private ended(ids: readonly string[]): void {
    for (const id of ids) {
      const job = this.jobs.get(id);
      if (!job || job.ended) continue;
      this.jobs.delete(id);
      this.endedJobs.add(id);
      this.control.requests.forgetJob(id);
      if (this.endedJobs.size > ENDED_KEPT) this.endedJobs.delete(this.endedJobs.values().next().value ?? id);
      const ending = this.executor.endJob(job);
      this.checkLedger(id);
      // Its usage went down: the head hears it in the next report, now.
      this.d.wake();
      ending.then(
        () => job.close(),
        (err: unknown) => {
          this.d.log.error({ err, job: id }, 'ending a job went wrong');
          job.close();
        },
      ).catch((err: unknown) => this.d.log.error({ err, job: id }, 'could not remove a job\'s in-job state'));
    }
  }

  /** The ledger's invariant after a job ended: nothing held for it, free + held == total. */
  private checkLedger(jobId: string): void {
    const held = this.ledger.heldBy(jobId);
    const off = this.ledger.imbalance();
    if (held > 0 || off) this.d.log.error({ job: jobId, held, off }, 'resource invariant broken: free + held != total');
  }

  async close(): Promise<void> {
    if (this.viewTimer) clearTimeout(this.viewTimer);
    this.control.close();
    this.executor.close();
    await Promise.allSettled([...this.jobs.values()].map((j) => this.executor.endJob(j).finally(() => j.close())));
    this.jobs.clear();
    await this.peers.close();
    closeShmPool(this.shm, this.d.workDir);
  }
}
