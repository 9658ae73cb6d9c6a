/**
 * The agent's in-job task API: one socket per job for its processes, the executor that runs their
 * tasks here, the relay of what it cannot place to the head (and of results back to their
 * owners), and the peer server other agents fetch large objects from.
 */
import fs from 'node:fs';
import path from 'node:path';
import {
  clientMessageSchema,
  type Assignment,
  type InjobAnswer,
  type InjobPoll,
  type InjobReport,
  type JobContext,
  type RefsResponse,
  type TaskRef,
  type Usage,
} from '../../shared/protocol/index.js';
import type { Logger } from '../../shared/log.js';
import type { Outbox } from '../outbox.js';
import { Executor } from './executor.js';
import type { Frame } from './frames.js';
import { JobState, type Conn } from './jobState.js';
import { NodeLedger, type Holding } from './ledger.js';
import { errorValue, fromRelay, type ObjValue } from './objects.js';
import { PeerClient, PeerServer } from './peer.js';
import { Relay } from './relay.js';
import type { Task, WorkerProc } from './types.js';
import { jobApiEnv, type LaunchDeps } from './workerLaunch.js';

const ENDED_KEPT = 10_000;

export interface JobApiDeps extends LaunchDeps {
  workDir: string;
  /** What agents present to each other's object servers (the head hands it out at registration). */
  token: () => string;
  outbox: Outbox;
  killGraceMs: number;
  log: Logger;
  totals: { num_cpus: number; num_gpus: number; memory: number; resources: Record<string, number>; task_slots?: number | undefined };
  /** Wake the report loop: there is in-job traffic for the head. */
  wake: () => void;
}

export class JobApi {
  readonly ledger: NodeLedger;
  readonly executor: Executor;
  readonly relay = new Relay();
  private readonly jobs = new Map<string, JobState>();
  /** Jobs whose in-job state ended here, newest last: late deliveries for them are dropped. */
  private readonly endedJobs = new Set<string>();
  private readonly peer: PeerServer;
  private readonly peers: PeerClient;
  private nodes: Record<string, string> = {};
  private free: Record<string, Usage> = {};
  private viewTimer: NodeJS.Timeout | null = null;
  private readonly root: string;

  constructor(private readonly d: JobApiDeps) {
    this.root = path.join(d.workDir, 'j');
    // Sockets and objects of a previous run of this agent belong to jobs it no longer serves.
    fs.rmSync(this.root, { recursive: true, force: true });
    this.ledger = new NodeLedger(d.totals);
    this.executor = new Executor(this.ledger, d, {
      finished: (t, v) => this.finished(t, v),
      spill: (t) => this.spill(t),
      actorPlaced: (job, id) => {
        this.relay.actors.push({ job_id: job.jobId, actor_id: id });
        this.d.wake();
      },
      output: (job, stream, data) => this.output(job, stream, data),
      remoteFree: () => Object.entries(this.free).filter(([id]) => id !== this.me()).map(([, f]) => ({ ...f, gpus: [...f.gpus], custom: { ...f.custom } })),
      waiting: () => {
        // The head's view of other nodes comes with each report's answer; while tasks wait here
        // that another node could take, refresh it often (it was maybe taken while they were busy).
        if (this.viewTimer) return;
        this.viewTimer = setTimeout(() => {
          this.viewTimer = null;
          this.d.wake();
        }, 100);
      },
    }, d.killGraceMs, d.log);
    this.executor.workerSource = () => [...this.jobs.values()].flatMap((j) => [...j.workers]);
    this.peer = new PeerServer(d.token, { objectFile: (j, id) => this.objectFile(j, id), refs: (j, ids, w) => this.refs(j, ids, w) }, d.log);
    this.peers = new PeerClient(d.token);
  }

  private me(): string {
    return this.d.nodeId();
  }

  async start(host: string): Promise<void> {
    await this.peer.start(host);
  }

  get address(): string | null {
    return this.peer.address;
  }

  private async job(jobId: string, ctx: JobContext | null): Promise<JobState> {
    let job = this.jobs.get(jobId);
    if (!job) {
      job = new JobState(jobId, this.root, () => this.me(), (node, id, dest) => this.fetchRemote(jobId, node, id, dest), (owner, id) => this.askOwner(jobId, owner, id));
      this.jobs.set(jobId, job);
      await job.listen((c, f) => this.onFrame(c, f), (c) => this.onClose(c));
    }
    job.ctx ??= ctx;
    return job;
  }

  /** A job task is about to start here: give it the socket, token and libraries. */
  async attach(a: Assignment, ref: TaskRef, env: Record<string, string>): Promise<{ env: Record<string, string>; paths: string[]; detach: () => void }> {
    const job = await this.job(a.job_id, { job_id: a.job_id, working_dir_package: a.working_dir_package, runtime_env: a.runtime_env, env_vars: a.env_vars, sandbox: a.sandbox });
    job.drivers.push(ref);
    const api = jobApiEnv(job, this.d.libs, env);
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

  // ---- the job socket ---------------------------------------------------------------------------

  private onFrame(conn: Conn, f: Frame): void {
    const parsed = clientMessageSchema.safeParse(f.header);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      return conn.refuse('INVALID_MESSAGE', `bad message: ${issue ? `${issue.path.join('.')}: ${issue.message}` : 'unknown'}`);
    }
    const msg = parsed.data;
    const job = conn.job;
    if (msg.t === 'hello') {
      if (!job.checkToken(msg.token)) return conn.refuse('UNAUTHORIZED', 'invalid job token');
      const w = msg.role === 'worker' ? [...job.workers].find((x) => x.id === msg.worker_id && !x.conn) : null;
      if (msg.role === 'worker' && !w) return conn.refuse('UNAUTHORIZED', `no worker ${msg.worker_id ?? '?'} is waiting to connect for this job`);
      conn.role = msg.role;
      conn.lang = msg.lang;
      conn.send({ t: 'welcome', node_id: this.me(), job_id: job.jobId });
      if (w) {
        w.conn = conn;
        conn.worker = w;
        this.executor.workerReady(w);
      }
      return;
    }
    if (!conn.role) return conn.refuse('UNAUTHORIZED', 'say hello first');
    switch (msg.t) {
      case 'submit': {
        const taken = takenId(job, msg.tasks.map((s) => s.id), msg.tasks.flatMap((s) => (s.kind === 'actor_create' ? [s.actor_id ?? s.id] : [])));
        if (taken) return conn.refuse('DUPLICATE_ID', `object id ${taken} is already in use in this job`);
        let at = 0;
        for (const spec of msg.tasks) {
          const args = f.payload.subarray(at, at + spec.args_len);
          at += spec.args_len;
          job.objects.claim(spec.id);
          void job.objects.whenReady(spec.id, '').then((v) => this.push(conn, spec.id, v, false));
          const task: Task = { job, spec, args, lang: conn.lang, attempt: 1, origin: 'local', ownerNode: this.me(), deps: new Map(), holding: null, worker: null, dispatched: false };
          if (spec.kind === 'task') job.counts.pending++;
          this.accept(task);
        }
        return;
      }
      case 'put':
        if (!job.objects.free(msg.id)) return conn.refuse('DUPLICATE_ID', `object id ${msg.id} is already in use in this job`);
        job.objects.claim(msg.id);
        job.objects.resolve(msg.id, job.objects.store(msg.id, Buffer.from(f.payload)));
        return;
      case 'get':
        for (const r of msg.refs) void job.objects.whenReady(r.id, r.owner).then((v) => this.push(conn, r.id, v, true));
        return;
      case 'result':
        if (conn.worker) this.executor.result(conn.worker, msg, Buffer.from(f.payload));
        return;
      case 'blocked':
      case 'unblocked':
        if (conn.worker) this.executor.blocked(conn.worker, msg.t === 'blocked');
        return;
      case 'kill_actor':
        if (!this.executor.actors.kill(job, msg.actor.id)) {
          this.relay.kill_actors.push({ job_id: job.jobId, actor_id: msg.actor.id, owner: msg.actor.owner });
          this.d.wake();
        }
        return;
    }
  }

  private onClose(conn: Conn): void {
    const w: WorkerProc | null = conn.worker;
    if (w && w.state !== 'dead') void w.handle?.terminate(this.d.killGraceMs);
  }

  /** Send an object's state to a client; large objects held elsewhere are fetched only when asked for. */
  private push(conn: Conn, id: string, v: ObjValue, fetch: boolean): void {
    if (conn.closed) return;
    if (v.kind === 'inline') return conn.resolved({ id, state: 'value', len: v.data.length }, v.data);
    if (v.kind === 'error') return conn.resolved({ id, state: 'error', len: v.data.length, error: v.error }, v.data);
    if (v.node !== this.me() && !fetch) return conn.resolved({ id, state: 'remote', len: v.size });
    conn.job.objects.localPath(id, v).then(
      (p) => conn.resolved({ id, state: 'path', len: v.size, path: p }),
      (err: unknown) => this.push(conn, id, errorValue('ObjectLostError', `object ${id} could not be fetched from ${v.node}: ${(err as Error).message}`, ''), false),
    );
  }

  /** Resolve a task's arguments, keep one submitter's actor calls in order, then run or relay it. */
  private accept(task: Task): void {
    const { job, spec } = task;
    const deps = (): Promise<void> =>
      Promise.all(spec.deps.map(async (d) => task.deps.set(d.id, await job.objects.whenReady(d.id, d.owner)))).then(() => undefined);
    if (spec.kind === 'actor_call') {
      const aid = spec.actor_id ?? '';
      const prev = job.callChains.get(aid) ?? Promise.resolve();
      const next = prev.then(async () => {
        await deps();
        const home = job.actors.has(aid) ? 'local' : await (job.actorHome.get(aid) ?? Promise.resolve('remote' as const));
        if (home === 'local') this.executor.actors.call(task);
        else this.toHead(task);
      });
      job.callChains.set(aid, next.catch(() => undefined));
      return;
    }
    if (spec.kind === 'actor_create') {
      let decide: (h: 'local' | 'remote') => void = () => undefined;
      job.actorHome.set(spec.actor_id ?? spec.id, new Promise((r) => (decide = r)));
      task.decide = decide;
    }
    void deps().then(() => this.executor.enqueue(task));
  }

  private spill(task: Task): void {
    if (task.spec.kind === 'task') task.job.counts.pending = Math.max(0, task.job.counts.pending - 1);
    this.toHead(task);
  }

  private toHead(task: Task): void {
    task.decide?.('remote');
    this.relay.submit.push({
      job_id: task.job.jobId,
      owner_node: task.ownerNode,
      lang: task.lang,
      spec: task.spec,
      args: task.args.toString('base64'),
      deps: [...task.deps].map(([id, v]) => ({ id, value: task.job.objects.toRelay(v) })),
      attempt: task.attempt,
    });
    this.d.wake();
  }

  private finished(task: Task, value: ObjValue): void {
    const { job } = task;
    if (task.spec.kind === 'actor_create') task.decide?.('local');
    // Recorded here whoever owns it: a large value stays in this node's store and is fetched from here.
    job.objects.resolve(task.spec.id, value);
    if (task.origin === 'head') {
      if (task.ownerNode !== this.me()) this.relay.results.push({ job_id: job.jobId, id: task.spec.id, owner_node: task.ownerNode, value: job.objects.toRelay(value) });
      this.relay.done.push({ job_id: job.jobId, id: task.spec.id });
      this.d.wake();
    }
  }

  private output(job: JobState, stream: 'stdout' | 'stderr', data: Buffer): void {
    if (data.length === 0) return;
    const driver = job.drivers[0];
    if (driver) this.d.outbox.output(driver, stream, data);
    else {
      this.relay.logs.push({ job_id: job.jobId, data: data.toString('base64') });
      this.d.wake();
    }
  }

  // ---- other agents ---------------------------------------------------------------------------

  private async fetchRemote(jobId: string, node: string, id: string, dest: string): Promise<void> {
    const url = this.nodes[node];
    if (!url) throw new Error(`no address known for node ${node}`);
    await this.peers.fetchObject(url, jobId, id, dest);
  }

  private async askOwner(jobId: string, owner: string, id: string): Promise<ObjValue> {
    for (let tries = 0; ; tries++) {
      const url = this.nodes[owner];
      if (url) {
        const res = await this.peers.refs(url, jobId, [id], 20_000);
        const item = res.items[0];
        if (item?.value) return fromRelay(item.value);
        if (item && !item.known && tries > 3) throw new Error(`its owner ${owner} does not know it`);
      } else if (tries > 50) throw new Error(`its owner ${owner} is not a live node`);
      else await new Promise((r) => setTimeout(r, 200));
    }
  }

  private objectFile(jobId: string, id: string): string | null {
    const job = this.jobs.get(jobId);
    const v = job?.objects.get(id);
    if (!job || !v || v.kind !== 'file') return null;
    return v.node === this.me() ? job.objects.filePath(id) : null;
  }

  private async refs(jobId: string, ids: string[], waitMs: number): Promise<RefsResponse> {
    const job = this.jobs.get(jobId);
    if (!job) return { items: ids.map((id) => ({ id, value: null, known: false })) };
    const ready = Promise.all(ids.filter((id) => job.objects.has(id)).map((id) => job.objects.whenReady(id, '')));
    await Promise.race([ready, new Promise((r) => setTimeout(r, waitMs))]);
    return {
      items: ids.map((id) => {
        const v = job.objects.get(id);
        return { id, value: v ? job.objects.toRelay(v) : null, known: job.objects.has(id) };
      }),
    };
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
    this.nodes = ans.nodes;
    this.free = ans.free;
    this.ended(ans.ended);
    this.executor.pump();
  }

  reportFailed(): void {
    this.relay.failed();
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
        const task: Task = { job, spec: t.spec, args: Buffer.from(t.args, 'base64'), lang: t.lang, attempt: t.attempt, origin: 'head', ownerNode: t.owner_node, deps, holding: null, worker: null, dispatched: false };
        this.relay.received.push({ job_id: t.job_id, id: t.spec.id });
        if (t.spec.kind === 'actor_call') this.executor.actors.call(task);
        else {
          if (t.spec.kind === 'task') job.counts.pending++;
          this.executor.enqueue(task);
        }
      } else if (msg.type === 'result') {
        this.jobs.get(msg.result.job_id)?.objects.resolve(msg.result.id, fromRelay(msg.result.value));
      } else if (msg.type === 'kill_actor') {
        const job = this.jobs.get(msg.job_id);
        if (job) this.executor.actors.kill(job, msg.actor_id);
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
      if (this.endedJobs.size > ENDED_KEPT) this.endedJobs.delete(this.endedJobs.values().next().value ?? id);
      const ending = this.executor.endJob(job);
      this.checkLedger(id);
      // Its usage went down: the head hears it in the next report, now.
      this.d.wake();
      void ending.finally(() => job.close());
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
    this.executor.close();
    await Promise.allSettled([...this.jobs.values()].map((j) => this.executor.endJob(j).finally(() => j.close())));
    this.jobs.clear();
    await this.peer.close();
    await this.peers.close();
  }
}

/** The first of `ids` (task and object ids, and new actors' ids) this job already uses, or that repeats. */
function takenId(job: JobState, ids: readonly string[], actorIds: readonly string[]): string | null {
  const seen = new Set<string>();
  for (const id of ids) {
    if (seen.has(id) || !job.objects.free(id)) return id;
    seen.add(id);
  }
  for (const id of actorIds) if (job.actorHome.has(id) || job.actors.has(id)) return id;
  return null;
}
