/**
 * The head's side of the agent protocol: registration, leases, event and log delivery, and the
 * long-poll that hands out assignments and kill orders.
 */
import os from 'node:os';
import { RaysubError } from '../shared/errors.js';
import { newNodeId } from '../shared/ids.js';
import type { Logger } from '../shared/log.js';
import type {
  Assignment,
  LogAck,
  NodeInfo,
  PollRequest,
  PollResponse,
  RegisterRequest,
  RegisterResponse,
  ReportRequest,
  ReportResponse,
  TaskRef,
} from '../shared/protocol/index.js';
import { fromUnits } from '../shared/resources.js';
import type { Engine } from './engine.js';
import type { InjobHub } from './injob.js';
import type { LiveNode, LiveTask } from './state.js';

export interface AgentHubOptions {
  heartbeatIntervalMs: number;
  leaseMs: number;
  pollWaitMs: number;
}

export class AgentHub {
  private leaseTimer: NodeJS.Timeout | null = null;
  private closed = false;
  /** Builds the assignment body for a task (the job service knows packages and env vars). */
  assignmentOf: ((task: LiveTask) => Assignment) | null = null;
  /** The in-job task API's traffic (placement, results, actors), when the head runs it. */
  injob: InjobHub | null = null;

  constructor(
    private readonly engine: Engine,
    private readonly opts: AgentHubOptions,
    private readonly log: Logger,
  ) {}

  start(): void {
    const every = Math.max(50, Math.min(this.opts.heartbeatIntervalMs, this.opts.leaseMs / 4));
    this.leaseTimer = setInterval(() => this.checkLeases(), every);
    this.leaseTimer.unref();
  }

  close(): void {
    this.closed = true;
    if (this.leaseTimer) clearInterval(this.leaseTimer);
    for (const n of this.engine.live.nodes.values()) n.wake?.();
  }

  register(req: RegisterRequest): RegisterResponse {
    const now = Date.now();
    const { store, live } = this.engine;
    const id = newNodeId();
    this.engine.transact(() => {
      // A node name is one machine's identity: a new agent under the same name replaces the old one.
      for (const n of [...live.nodes.values()]) {
        if (n.name === req.node_name || n.id === req.previous_node_id) this.markLost(n, `replaced by a new agent registering as ${req.node_name}`, now);
      }
      store.nodes.insert({
        id,
        name: req.node_name,
        hostname: req.hostname,
        totals: JSON.stringify(req.totals),
        sandbox: JSON.stringify(req.sandbox),
        registered_at: now,
      });
      const row = store.nodes.get(id);
      if (row) live.addNode(row, now + this.opts.leaseMs);
    });
    this.log.info({ nodeId: id, name: req.node_name, totals: req.totals, sandbox: req.sandbox.mode }, 'node registered');
    this.engine.requestSchedule();
    return {
      node_id: id,
      heartbeat_interval_ms: this.opts.heartbeatIntervalMs,
      lease_ms: this.opts.leaseMs,
      poll_wait_ms: this.opts.pollWaitMs,
    };
  }

  private liveNode(nodeId: string): LiveNode {
    const node = this.engine.live.nodes.get(nodeId);
    if (!node) {
      throw new RaysubError('NODE_LOST', `node ${nodeId} is not registered or was declared lost; register again`);
    }
    node.leaseUntil = Math.max(node.leaseUntil, Date.now() + this.opts.leaseMs);
    return node;
  }

  /** Deliver logs, then events (each applied at most once), and answer with acks and kill orders. */
  report(nodeId: string, req: ReportRequest): ReportResponse {
    const node = this.liveNode(nodeId);
    const { store, logs, live } = this.engine;
    const acks: LogAck[] = [];
    for (const chunk of req.logs) {
      const t = live.tasks.get(chunk.task_id);
      if (!t || t.attempt !== chunk.attempt || t.nodeId !== nodeId) {
        acks.push({ task_id: chunk.task_id, attempt: chunk.attempt, offset: chunk.offset, stale: true });
        continue;
      }
      const data = Buffer.from(chunk.data, 'base64');
      const size = logs.appendAt(t.jobId, t.idx, t.logStart + chunk.offset, data, chunk.stream);
      acks.push({ task_id: chunk.task_id, attempt: chunk.attempt, offset: size - t.logStart, stale: false });
    }
    let acked = 0;
    const now = Date.now();
    this.engine.transact(() => {
      const row = store.nodes.get(nodeId);
      acked = row?.last_seq ?? 0;
      for (const ev of req.events) {
        if (ev.seq <= acked) continue;
        if (ev.seq !== acked + 1) break; // never skip a sequence number: wait for the gap to be resent
        this.engine.applyEvent(nodeId, ev);
        acked = ev.seq;
      }
      store.nodes.setSeq(nodeId, acked);
      store.nodes.touch(nodeId, now, req.usage ? JSON.stringify(req.usage) : null);
    });
    // Events may have freed resources: place what waits now, so that this node's share travels
    // in this answer instead of waking its long-poll (one exchange fewer per task).
    if (req.events.length) this.engine.schedule(nodeId);
    const injob = req.injob && this.injob ? this.injob.report(node, req.injob) : undefined;
    const assignments = this.undelivered(node, req.running);
    return {
      acked_seq: acked,
      logs: acks,
      kills: this.engine.killsFor(node.id, req.running),
      ...(assignments.length ? { assignments } : {}),
      ...(injob ? { injob } : {}),
    };
  }

  /** Long-poll: answer at once if there is work or a kill order, else park until woken or timed out. */
  async poll(nodeId: string, req: PollRequest, signal: AbortSignal): Promise<PollResponse> {
    const node = this.liveNode(nodeId);
    const deadline = Date.now() + Math.min(req.wait_ms, this.opts.pollWaitMs);
    for (;;) {
      const answer = this.pollAnswer(node, req);
      const injob = answer.injob;
      const injobWork = injob ? injob.deliveries.length + injob.ended.length > 0 : false;
      if (answer.assignments.length || answer.kills.length || injobWork || this.closed || signal.aborted || Date.now() >= deadline) {
        this.liveNode(nodeId);
        return answer;
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(finish, deadline - Date.now());
        function finish(): void {
          clearTimeout(timer);
          signal.removeEventListener('abort', finish);
          if (node.wake === finish) node.wake = null;
          resolve();
        }
        node.wake?.();
        node.wake = finish;
        signal.addEventListener('abort', finish);
      });
      if (!this.engine.live.nodes.has(nodeId)) throw new RaysubError('NODE_LOST', `node ${nodeId} was declared lost; register again`);
    }
  }

  private pollAnswer(node: LiveNode, req: PollRequest): PollResponse {
    const injob = this.injob?.poll(node.id, req.injob_ack, req.injob_jobs);
    return { assignments: this.undelivered(node, req.known), kills: this.engine.killsFor(node.id, req.known), ...(injob ? { injob } : {}) };
  }

  /** The node's assigned tasks that the agent does not list as held (placed since, or an answer was lost). */
  private undelivered(node: LiveNode, known: readonly TaskRef[]): Assignment[] {
    const assignments: Assignment[] = [];
    let knownKeys: Set<string> | null = null;
    for (const id of node.running) {
      const t = this.engine.live.tasks.get(id);
      if (!t || t.state !== 'ASSIGNED') continue;
      knownKeys ??= new Set(known.map((k) => `${k.task_id}#${k.attempt}`));
      if (knownKeys.has(`${t.id}#${t.attempt}`)) continue;
      const a = this.assignmentOf?.(t);
      if (a) assignments.push(a);
    }
    return assignments;
  }

  /** Take no new work on this node; what runs there finishes. */
  drain(nodeId: string): void {
    const node = this.liveNode(nodeId);
    if (node.draining) return;
    node.draining = true;
    this.engine.store.nodes.setState(nodeId, 'DRAINING');
    this.log.info({ nodeId, name: node.name }, 'node draining');
    this.engine.requestSchedule();
  }

  /** An agent shutting down cleanly: settle its tasks now instead of waiting for its lease. */
  leave(nodeId: string): void {
    const node = this.engine.live.nodes.get(nodeId);
    if (!node) return;
    this.log.info({ nodeId, name: node.name }, 'node left');
    this.engine.transact(() => this.markLost(node, `node ${node.name} shut down`, Date.now()));
    this.engine.requestSchedule();
  }

  private checkLeases(): void {
    const now = Date.now();
    for (const node of [...this.engine.live.nodes.values()]) {
      if (node.leaseUntil >= now) continue;
      this.log.warn({ nodeId: node.id, name: node.name }, 'node missed its heartbeats: declared lost');
      this.engine.transact(() => this.markLost(node, `node ${node.name} stopped sending heartbeats`, now));
      this.engine.requestSchedule();
    }
    this.engine.store.nodes.forgetLost(now - 24 * 3600_000);
  }

  /** Declare a node lost (inside a transaction): its tasks are retried elsewhere or fail. */
  private markLost(node: LiveNode, reason: string, now: number): void {
    const { store, live } = this.engine;
    store.nodes.setState(node.id, 'LOST');
    for (const id of [...node.running]) {
      const t = live.tasks.get(id);
      if (t) this.engine.taskLost(t, reason, now);
    }
    live.nodes.delete(node.id);
    this.injob?.nodeLost(node.id);
    node.wake?.();
  }

  nodeInfos(): NodeInfo[] {
    const live = this.engine.live;
    return this.engine.store.nodes.all().map((row) => {
      const n = live.nodes.get(row.id);
      const totals = JSON.parse(row.totals) as NodeInfo['totals'];
      const free = n
        ? {
            num_cpus: fromUnits(n.free.cpus),
            num_gpus: n.free.gpus.filter((g) => g === 10_000).length,
            memory: n.free.memory,
            resources: Object.fromEntries(Object.entries(n.free.custom).map(([k, v]) => [k, fromUnits(v)])),
          }
        : { num_cpus: 0, num_gpus: 0, memory: 0, resources: {} };
      return {
        node_id: row.id,
        node_name: row.name,
        hostname: row.hostname,
        state: n ? (n.draining ? 'DRAINING' : 'ALIVE') : row.state === 'ALIVE' ? 'LOST' : row.state,
        registered_at: row.registered_at,
        last_seen_at: row.last_seen_at,
        totals,
        free,
        gpu_free: n ? n.free.gpus.map(fromUnits) : [],
        sandbox: JSON.parse(row.sandbox) as NodeInfo['sandbox'],
        running_tasks: n?.running.size ?? 0,
        usage: JSON.parse(row.usage) as Record<string, unknown>,
      };
    });
  }
}

export const headHostname = os.hostname();
