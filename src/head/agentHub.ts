/**
 * The head's side of the agent protocol: registration, leases, event and log delivery, and the
 * long-poll that hands out assignments and kill orders. Live state changes go through the engine;
 * this class keeps only the parked polls.
 */
import os from 'node:os';
import { RaysubError } from '../shared/errors.js';
import { guarded } from '../shared/boundary.js';
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
import type { Store } from './db/index.js';
import type { Engine } from './engine.js';
import { killsFor } from './placement.js';
import type { InjobHub } from './injob.js';
import { assignmentOf } from './jobContext.js';
import type { LogStore } from './logStore.js';
import type { NodeView } from './state.js';

export interface AgentHubOptions {
  heartbeatIntervalMs: number;
  leaseMs: number;
  pollWaitMs: number;
}

export class AgentHub {
  private leaseTimer: NodeJS.Timeout | null = null;
  private closed = false;
  /** Per node, what resolves its parked long-poll so that it answers now. */
  private readonly parked = new Map<string, () => void>();

  constructor(
    private readonly engine: Engine,
    private readonly store: Store,
    private readonly logs: LogStore,
    private readonly injob: InjobHub,
    private readonly opts: AgentHubOptions,
    private readonly log: Logger,
  ) {
    engine.on('wake', (nodeId) => this.parked.get(nodeId)?.());
  }

  start(): void {
    const every = Math.max(50, Math.min(this.opts.heartbeatIntervalMs, this.opts.leaseMs / 4));
    this.leaseTimer = setInterval(
      guarded(this.log, 'lease check', () => this.engine.expireLeases(Date.now())),
      every,
    );
    this.leaseTimer.unref();
  }

  close(): void {
    this.closed = true;
    if (this.leaseTimer) clearInterval(this.leaseTimer);
    for (const wake of [...this.parked.values()]) wake();
  }

  /** Register a node for `credential`; `replacing`: its own earlier registration (nodeIdentity.ts admits it). */
  register(req: RegisterRequest, credential: string, replacing: readonly string[]): RegisterResponse {
    const now = Date.now();
    const id = this.engine.registerNode({ name: req.node_name, credential, hostname: req.hostname, totals: req.totals, sandbox: req.sandbox }, replacing, now);
    // Before the scheduling pass the registration asked for: an unhealthy node gets nothing.
    if (req.unhealthy) this.engine.setUnhealthy(id, req.unhealthy);
    this.log.info({ nodeId: id, name: req.node_name, totals: req.totals, sandbox: req.sandbox.mode }, 'node registered');
    return {
      node_id: id,
      heartbeat_interval_ms: this.opts.heartbeatIntervalMs,
      lease_ms: this.opts.leaseMs,
      poll_wait_ms: this.opts.pollWaitMs,
      ...(this.logs.cap ? { log_cap: { max_job_bytes: this.logs.cap.maxJobBytes, tail_bytes: this.logs.cap.tailBytes } } : {}),
    };
  }

  /** Deliver logs, then events (each applied at most once), and answer with acks and kill orders. */
  report(nodeId: string, req: ReportRequest): ReportResponse {
    this.engine.renewLease(nodeId);
    // First: a node-fault exit in this report must not have its retry placed back here.
    this.engine.setUnhealthy(nodeId, req.unhealthy ?? null);
    const acks: LogAck[] = [];
    for (const chunk of req.logs) {
      const t = this.engine.view.task(chunk.task_id);
      if (!t || t.attempt !== chunk.attempt || t.nodeId !== nodeId) {
        acks.push({ task_id: chunk.task_id, attempt: chunk.attempt, offset: chunk.offset, stale: true });
        continue;
      }
      const data = Buffer.from(chunk.data, 'base64');
      // A full disk fails the whole report (507): nothing of it is acknowledged, the agent resends.
      let at = t.logStart + chunk.offset;
      if (chunk.skipped) {
        const held = this.logs.skipAt(t.jobId, t.idx, t.attempt, at, chunk.skipped);
        if (held < at + chunk.skipped) {
          acks.push({ task_id: chunk.task_id, attempt: chunk.attempt, offset: held - t.logStart, stale: false });
          continue;
        }
        at += chunk.skipped;
      }
      const size = this.logs.appendAt(t.jobId, t.idx, t.attempt, at, data, chunk.stream, chunk.captured_at);
      acks.push({ task_id: chunk.task_id, attempt: chunk.attempt, offset: size - t.logStart, stale: false });
    }
    if (req.injob) this.injob.counted(nodeId, req.injob);
    const acked = this.engine.applyReport(nodeId, req.events, req.usage ? JSON.stringify(req.usage) : null, Date.now());
    // Events may have freed resources: place what waits now, so that this node's share travels
    // in this answer instead of waking its long-poll (one exchange fewer per task).
    if (req.events.length) this.engine.schedule(nodeId);
    const injob = req.injob ? this.injob.report(nodeId, req.injob) : undefined;
    const node = this.engine.view.node(nodeId);
    const assignments = node ? this.undelivered(node, req.running) : [];
    return {
      acked_seq: acked,
      logs: acks,
      kills: killsFor(this.engine.view, nodeId, req.running),
      ...(assignments.length ? { assignments } : {}),
      ...(injob ? { injob } : {}),
    };
  }

  /** Long-poll: answer at once if there is work or a kill order, else park until woken or timed out. */
  async poll(nodeId: string, req: PollRequest, signal: AbortSignal): Promise<PollResponse> {
    this.engine.renewLease(nodeId);
    const deadline = Date.now() + Math.min(req.wait_ms, this.opts.pollWaitMs);
    for (;;) {
      const node = this.engine.view.node(nodeId);
      if (!node) throw new RaysubError('NODE_LOST', `node ${nodeId} was declared lost; register again`);
      const answer = this.pollAnswer(node, req);
      const injob = answer.injob;
      const injobWork = injob ? injob.deliveries.length + injob.ended.length > 0 : false;
      if (answer.assignments.length || answer.kills.length || injobWork || this.closed || signal.aborted || Date.now() >= deadline) {
        this.engine.renewLease(nodeId);
        return answer;
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(finish, deadline - Date.now());
        const parked = this.parked;
        function finish(): void {
          clearTimeout(timer);
          signal.removeEventListener('abort', finish);
          if (parked.get(nodeId) === finish) parked.delete(nodeId);
          resolve();
        }
        // One parked poll per node: an older one answers now.
        parked.get(nodeId)?.();
        parked.set(nodeId, finish);
        signal.addEventListener('abort', finish);
      });
    }
  }

  private pollAnswer(node: NodeView, req: PollRequest): PollResponse {
    const injob = this.injob.poll(node.id, req.injob_ack, req.injob_jobs);
    return { assignments: this.undelivered(node, req.known), kills: killsFor(this.engine.view, node.id, req.known), injob };
  }

  /** The node's assigned tasks that the agent does not list as held (placed since, or an answer was lost). */
  private undelivered(node: NodeView, known: readonly TaskRef[]): Assignment[] {
    const assignments: Assignment[] = [];
    let knownKeys: Set<string> | null = null;
    for (const id of node.running) {
      const t = this.engine.view.task(id);
      if (!t || t.state !== 'ASSIGNED') continue;
      knownKeys ??= new Set(known.map((k) => `${k.task_id}#${k.attempt}`));
      if (knownKeys.has(`${t.id}#${t.attempt}`)) continue;
      assignments.push(assignmentOf(this.engine.view.job(t.jobId), t));
    }
    return assignments;
  }

  /** Take no new work on this node; what runs there finishes. */
  drain(nodeId: string): void {
    this.engine.renewLease(nodeId);
    this.engine.drainNode(nodeId);
  }

  /** An agent shutting down cleanly: settle its tasks now instead of waiting for its lease. */
  leave(nodeId: string): void {
    const node = this.engine.view.node(nodeId);
    if (!node) return;
    this.log.info({ nodeId, name: node.name }, 'node left');
    this.engine.nodeLost(nodeId, `node ${node.name} shut down`);
  }

  /**
   * Every node the head knows, each name once: its live registration, else its latest lost one
   * (an agent registers anew at every start; the registrations it left are not nodes of their own).
   */
  nodeInfos(): NodeInfo[] {
    const rows = this.store.nodes.all();
    const shown = new Map<string, (typeof rows)[number]>();
    for (const row of rows) {
      const held = shown.get(row.name);
      const live = (r: typeof row): boolean => this.engine.view.node(r.id) !== undefined;
      if (!held || live(row) || (!live(held) && row.registered_at >= held.registered_at)) shown.set(row.name, row);
    }
    return [...shown.values()].map((row) => {
      const n = this.engine.view.node(row.id);
      const totals = JSON.parse(row.totals) as NodeInfo['totals'];
      const free = n
        ? {
            num_cpus: fromUnits(n.free.cpus),
            num_gpus: n.free.gpus.filter((g) => g === 10_000).length,
            memory: n.free.memory,
            resources: Object.fromEntries(Object.entries(n.free.custom).map(([k, v]) => [k, fromUnits(v)])),
            ...(totals.task_slots !== undefined ? { task_slots: n.free.tasks } : {}),
          }
        : { num_cpus: 0, num_gpus: 0, memory: 0, resources: {} };
      return {
        node_id: row.id,
        node_name: row.name,
        hostname: row.hostname,
        // DRAINING: its agent shuts down; a cordon (which also keeps work away) is `cordoned`.
        state: n ? (row.state === 'DRAINING' ? 'DRAINING' : 'ALIVE') : row.state === 'ALIVE' ? 'LOST' : row.state,
        registered_at: row.registered_at,
        last_seen_at: row.last_seen_at,
        totals,
        free,
        gpu_free: n ? n.free.gpus.map(fromUnits) : [],
        sandbox: JSON.parse(row.sandbox) as NodeInfo['sandbox'],
        running_tasks: n?.running.size ?? 0,
        usage: JSON.parse(row.usage) as Record<string, unknown>,
        cordoned: Boolean(row.cordoned),
        ...(n?.unhealthy ? { unhealthy: { ...n.unhealthy } } : {}),
      };
    });
  }
}

export const headHostname = os.hostname();
