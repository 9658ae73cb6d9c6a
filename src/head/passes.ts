/**
 * Part of the engine (only engine.ts uses it): scheduling passes — when they run (many triggers in
 * one tick give one pass; a wake-up timer for the next time a decision changes by itself) and what
 * a pass's plan (placement.ts) does to the head's state: tasks assigned to nodes in one
 * transaction, jobs no node could ever run failed, each waiting task's reason recorded.
 */
import { guarded } from '../shared/boundary.js';
import type { Logger } from '../shared/log.js';
import { applyPlacement } from '../shared/resources.js';
import type { Store } from './db/index.js';
import type { EngineEvents } from './events.js';
import type { LogStore } from './logStore.js';
import { planPlacements } from './placement.js';
import type { LiveJob, LiveState } from './state.js';

export interface PassOptions {
  starvationMs: number;
  unschedulableGraceMs: number;
}

export interface PassHooks {
  transact<T>(fn: () => T): T;
  /** Say the transaction changed live state. */
  touch(): void;
  /** Emit an engine event once the transaction commits. */
  announce<K extends keyof EngineEvents>(event: K, ...args: EngineEvents[K]): void;
  failUnschedulable(job: LiveJob, reason: string, at: number): void;
}

export class SchedulingPasses {
  /** Passes run on their own only once the head serves (start()); tests call run(). */
  private started = false;
  private scheduled = false;
  /** Jobs no alive node could ever run, and since when (see placement.ts). */
  private unplaceable = new Map<string, number>();
  private wakeTimer: NodeJS.Timeout | null = null;
  private readonly runPass: () => void;

  constructor(
    private readonly live: LiveState,
    private readonly store: Store,
    private readonly logs: LogStore,
    private readonly opts: PassOptions,
    private readonly log: Logger,
    private readonly hooks: PassHooks,
  ) {
    this.runPass = () => {
      // A pass run directly since (run()) already placed what this one would.
      if (!this.scheduled) return;
      try {
        this.run();
      } catch (err) {
        this.log.error({ err }, 'scheduling pass failed; trying again in a second');
        setTimeout(guarded(log, 'scheduling pass', () => this.request()), 1000).unref();
      }
    };
  }

  start(): void {
    this.started = true;
    this.request();
  }

  stop(): void {
    this.started = false;
    if (this.wakeTimer) clearTimeout(this.wakeTimer);
    this.wakeTimer = null;
  }

  request(): void {
    if (this.scheduled || !this.started) return;
    this.scheduled = true;
    setImmediate(this.runPass);
  }

  /**
   * One scheduling pass. Nodes that got work are woken, except `answering`: the node whose
   * report is being answered, whose answer carries its new assignments.
   */
  run(answering?: string, now = Date.now()): void {
    this.scheduled = false;
    const pass = planPlacements(this.live, {
      now,
      starvationMs: this.opts.starvationMs,
      unschedulableGraceMs: this.opts.unschedulableGraceMs,
      unplaceableSince: this.unplaceable,
    });
    this.unplaceable = pass.unplaceable;
    for (const [t, reason] of pass.reasons) {
      const task = this.live.tasks.get(t.id);
      if (task) task.reason = reason;
    }
    if (this.wakeTimer) clearTimeout(this.wakeTimer);
    this.wakeTimer = null;
    if (pass.nextWakeAt !== null) {
      this.wakeTimer = setTimeout(guarded(this.log, 'scheduling wake-up', () => this.request()), Math.max(0, pass.nextWakeAt - now) + 5);
      this.wakeTimer.unref();
    }
    if (pass.fail.length > 0) {
      this.hooks.transact(() => {
        this.hooks.touch();
        for (const [j, reason] of pass.fail) {
          const job = this.live.jobs.get(j.id);
          if (job) this.hooks.failUnschedulable(job, reason, now);
        }
      });
    }
    if (pass.placements.length === 0) return;
    const woken = new Set<string>();
    this.hooks.transact(() => {
      this.hooks.touch();
      for (const p of pass.placements) {
        const t = this.live.tasks.get(p.task.id);
        const job = t && this.live.jobs.get(t.jobId);
        const node = this.live.nodes.get(p.nodeId);
        if (!t || !job || !node) continue;
        const logStart = this.logs.size(t.jobId, t.idx);
        if (!this.store.tasks.assign(t.jobId, t.idx, t.attempt + 1, p.nodeId, p.gpuIds, logStart, now)) continue;
        t.state = 'ASSIGNED';
        t.attempt += 1;
        t.nodeId = p.nodeId;
        t.gpuIds = [...p.gpuIds];
        t.logStart = logStart;
        t.reason = null;
        this.live.dequeue(t);
        applyPlacement(node.free, job.request, p.gpuIds, -1);
        node.running.add(t.id);
        woken.add(p.nodeId);
        this.hooks.announce('placed', now - Math.max(t.waitingSince, t.notBefore));
      }
      for (const id of woken) if (id !== answering) this.hooks.announce('wake', id);
    });
  }
}
