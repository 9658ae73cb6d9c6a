/**
 * Actors on this node: each a dedicated worker holding one instance, created with the resources
 * it asked for (held until it dies). Its calls run in the order they arrive, one at a time or up
 * to its `max_concurrency` at once (a threaded or async actor). When its process dies it is
 * started again while it has restarts left (`max_restarts`): calls running then fail with
 * ActorUnavailableError unless they may be retried (`max_task_retries`), queued ones wait for it.
 * When its last handle goes it ends once the calls sent before have run.
 *
 * Calls to an actor that runs one call at a time are sent ahead (up to PIPELINE_CALLS, and
 * PIPELINE_BYTES of arguments): its worker queues them and starts the next as soon as one ends,
 * without waiting for the agent in between. It runs them in the order sent, so the first call in
 * flight is the one running and those behind it are still queued (cancelling one drops it, a
 * restart sends it again).
 */
import { guarded } from '../../shared/boundary.js';
import type { Logger } from '../../shared/log.js';
import type { JobState} from './jobState.js';
import { type Actor, depError, type ExecutorHooks, retriesLeft, type Task, type WorkerProc } from './jobState.js';
import type { NodeLedger } from './ledger.js';
import { cancelledValue, errorValue, type ObjValue } from './objects.js';

export interface ActorDeps {
  ledger: NodeLedger;
  log: Logger;
  hooks: ExecutorHooks;
  killGraceMs: number;
  startWorker(job: JobState, task: Task, key: string, actorId: string): WorkerProc;
  send(w: WorkerProc, task: Task): Promise<void>;
  /** Tell a worker to stop a call it runs (`force`: kill the process). */
  cancelRunning(w: WorkerProc, task: Task, force: boolean): void;
  pump(): void;
  /** The actor is dead for good here (its name, if any, is free again). */
  gone(actor: Actor): void;
}

/** The least time between two starts of an actor's process. */
const RESTART_SPACING_MS = 1000;
/** Calls of a one-at-a-time actor sent to its worker ahead of the one it runs, at most... */
export const PIPELINE_CALLS = 32;
/** ...and their arguments' bytes at most (beyond the first call's). */
export const PIPELINE_BYTES = 8 * 1024 * 1024;

export class ActorHost {
  constructor(private readonly d: ActorDeps) {}

  /** An actor's creation was accepted here: calls that arrive before it is placed wait for it. */
  expect(task: Task, err: ObjValue | null): void {
    const id = task.spec.actor_id ?? task.spec.id;
    if (err) {
      for (const t of task.job.parkedCalls.get(id) ?? []) this.d.hooks.finished(t, err);
      task.job.parkedCalls.delete(id);
    } else if (!task.job.parkedCalls.has(id)) task.job.parkedCalls.set(id, []);
  }

  create(task: Task): void {
    const job = task.job;
    const id = task.spec.actor_id ?? task.spec.id;
    const actor: Actor = {
      id,
      job,
      worker: null,
      holding: task.holding,
      queue: [],
      running: new Map([[task.spec.id, task]]),
      creation: task,
      concurrency: task.spec.max_concurrency ?? 1,
      restartsLeft: task.spec.max_restarts ?? 0,
      ready: false,
      dead: null,
      name: task.spec.name.replace(/\.__init__$/, ''),
      released: job.releasedActors.delete(id),
      final: false,
      startedAt: Date.now(),
    };
    job.actors.set(id, actor);
    actor.queue.push(...(job.parkedCalls.get(id) ?? []));
    job.parkedCalls.delete(id);
    task.decide?.('local');
    this.d.hooks.actorPlaced(job, id);
    actor.worker = this.d.startWorker(job, task, `actor:${id}`, id);
  }

  call(task: Task): void {
    const actor = task.job.actors.get(task.spec.actor_id ?? '');
    const err = depError(task);
    if (err) return this.d.hooks.finished(task, err);
    if (task.cancelled) return this.d.hooks.finished(task, cancelledValue(task));
    if (!actor) {
      const parked = task.job.parkedCalls.get(task.spec.actor_id ?? '');
      if (parked) return void parked.push(task);
      return this.d.hooks.finished(task, errorValue('ActorDiedError', `actor ${task.spec.actor_id ?? '?'} is not known on this node`, task.spec.name));
    }
    if (actor.dead) return this.d.hooks.finished(task, errorValue('ActorDiedError', `actor ${actor.name} is dead: ${actor.dead.message}`, task.spec.name));
    actor.queue.push(task);
    this.pump(actor);
  }

  /**
   * Whether `next` may be sent to the actor's worker now: while fewer than its concurrency run, or,
   * for an actor of one call at a time, queued in its worker behind the one it runs (not a call that
   * is retried on an exception, which must run again before the calls behind it).
   */
  private mayStart(actor: Actor, next: Task): boolean {
    const n = actor.running.size;
    if (n < actor.concurrency) return true;
    if (actor.concurrency !== 1 || n >= PIPELINE_CALLS || next.spec.retry_exceptions) return false;
    let bytes = next.args.length;
    let first = true;
    for (const t of actor.running.values()) {
      if (t === actor.creation || t.spec.retry_exceptions) return false;
      if (!first) bytes += t.args.length;
      first = false;
    }
    return bytes <= PIPELINE_BYTES;
  }

  /** The call (or creation) of a worker's actor with this id, if it runs now. */
  runningTask(w: WorkerProc, taskId: string): Task | null {
    return w.job.actors.get(w.actorId ?? '')?.running.get(taskId) ?? null;
  }

  private pump(actor: Actor): void {
    const w = actor.worker;
    if (!actor.ready || actor.dead || !w?.conn) return;
    for (;;) {
      const next = actor.queue[0];
      if (!next || !this.mayStart(actor, next)) break;
      actor.queue.shift();
      // Cancelled while it waited for its actor to be created.
      if (next.cancelled) {
        this.d.hooks.finished(next, cancelledValue(next));
        continue;
      }
      actor.running.set(next.spec.id, next);
      // Sent in order: a call whose arguments are read from a file first must not be overtaken.
      const sent = (actor.sending ?? Promise.resolve()).then(() => this.d.send(w, next));
      actor.sending = sent;
      void sent.finally(() => {
        if (actor.sending === sent) actor.sending = null;
      });
    }
    if (actor.released && actor.running.size === 0 && actor.queue.length === 0) {
      this.died(actor, 'all references to the actor were removed', true);
    }
  }

  result(w: WorkerProc, task: Task, value: ObjValue, ok: boolean, retryable: boolean): void {
    const actor = w.job.actors.get(w.actorId ?? '');
    if (!actor || actor.running.get(task.spec.id) !== task) return;
    actor.running.delete(task.spec.id);
    if (task === actor.creation) {
      if (!ok) {
        // A constructor that raised: the actor is dead, and is not restarted (as in Ray).
        if (task.attempt === 1) this.d.hooks.finished(task, value);
        const e = value.kind === 'error' ? value.error : null;
        this.died(actor, `its constructor raised ${e?.type ?? 'an error'}: ${e?.message ?? ''}`, true);
        return;
      }
      actor.ready = true;
      w.job.counts.actors_alive++;
      // A restart's constructor: its object is the first one's, already resolved.
      if (task.attempt === 1) this.d.hooks.finished(task, value);
    } else if (!ok && retryable && !task.cancelled && task.spec.retry_exceptions && retriesLeft(task)) {
      task.attempt++;
      actor.queue.unshift(task);
    } else this.d.hooks.finished(task, value);
    this.pump(actor);
  }

  /** The actor's process is gone: restart it if it may be, else it is dead. */
  workerGone(actor: Actor, why: string): void {
    if (actor.dead) return;
    if (actor.final || actor.restartsLeft === 0 || actor.released || actor.job.ended) return this.died(actor, `the actor's worker process died (${why})`);
    if (actor.restartsLeft > 0) actor.restartsLeft--;
    if (actor.ready) actor.job.counts.actors_alive = Math.max(0, actor.job.counts.actors_alive - 1);
    actor.ready = false;
    const running = [...actor.running.values()].filter((t) => t !== actor.creation);
    actor.running.clear();
    // Calls sent ahead to an actor of one call at a time had not started: they wait for the new instance.
    const started = actor.concurrency === 1 ? running.slice(0, 1) : running;
    const again: Task[] = [];
    for (const t of running) {
      if (!started.includes(t)) again.push(t);
      else if (!t.cancelled && retriesLeft(t)) {
        t.attempt++;
        again.push(t);
      } else {
        this.d.hooks.finished(t, t.cancelled ? cancelledValue(t) : errorValue('ActorUnavailableError', `actor ${actor.name} is restarting: its process died while running ${t.spec.name} (${why})`, t.spec.name));
      }
    }
    actor.queue.unshift(...again);
    const creation = actor.creation;
    creation.attempt++;
    actor.running.set(creation.spec.id, creation);
    actor.worker = null;
    // An actor whose process keeps dying at once is restarted at most once a second.
    const wait = Math.max(0, actor.startedAt + RESTART_SPACING_MS - Date.now());
    const start = (): void => {
      if (actor.dead || actor.job.ended) return;
      actor.startedAt = Date.now();
      actor.worker = this.d.startWorker(actor.job, creation, `actor:${actor.id}`, actor.id);
    };
    if (wait === 0) start();
    else setTimeout(guarded(this.d.log, 'restarting an actor', start), wait).unref();
  }

  died(actor: Actor, why: string, stop = true): void {
    if (actor.dead) return;
    actor.dead = { type: 'ActorDiedError', message: why, traceback: '', task: actor.name };
    if (actor.ready) actor.job.counts.actors_alive = Math.max(0, actor.job.counts.actors_alive - 1);
    actor.ready = false;
    actor.job.counts.actors_dead++;
    const failed = [...actor.running.values(), ...actor.queue].filter((t) => t !== actor.creation || t.attempt === 1);
    actor.running.clear();
    actor.queue = [];
    for (const t of failed) {
      this.d.hooks.finished(t, t.cancelled ? cancelledValue(t) : errorValue('ActorDiedError', `actor ${actor.name} died before ${t.spec.name} finished: ${why}`, t.spec.name));
    }
    if (actor.holding) this.d.ledger.release(actor.holding);
    actor.holding = null;
    const w = actor.worker;
    if (stop && w && w.state !== 'dead') w.handle?.terminate(this.d.killGraceMs).catch(() => undefined);
    if (w) w.state = w.handle ? w.state : 'dead';
    this.d.gone(actor);
    this.d.pump();
  }

  /** Kill an actor living here (`restart`: it starts again if it has restarts left). False if it does not live here. */
  kill(job: JobState, actorId: string, restart = false): boolean {
    const actor = job.actors.get(actorId);
    if (!actor) return false;
    if (restart && actor.restartsLeft !== 0 && !actor.dead && !actor.released && actor.worker?.handle) {
      actor.worker.handle.terminate(this.d.killGraceMs).catch(() => undefined);
      return true;
    }
    this.died(actor, 'killed by raysub.kill()');
    return true;
  }

  /** The actor's last handle went: it ends once the calls sent before have run. */
  release(job: JobState, actorId: string): boolean {
    const actor = job.actors.get(actorId);
    if (!actor) return false;
    actor.released = true;
    this.pump(actor);
    return true;
  }

  /** It ended itself (`exit_actor()`, `__ray_terminate__`): not restarted. */
  exiting(w: WorkerProc): void {
    const actor = w.job.actors.get(w.actorId ?? '');
    if (actor) actor.final = true;
  }

  /** Cancel a call: dropped if queued, stopped if running (a call is never killed by force). */
  cancel(job: JobState, actorId: string, taskId: string): boolean {
    const actor = job.actors.get(actorId);
    if (!actor) return false;
    const i = actor.queue.findIndex((t) => t.spec.id === taskId);
    if (i >= 0) {
      const [t] = actor.queue.splice(i, 1);
      if (t) this.d.hooks.finished(t, cancelledValue(t));
      this.pump(actor);
      return true;
    }
    const t = actor.running.get(taskId);
    if (!t || t === actor.creation) return false;
    t.cancelled = { force: false };
    if (actor.worker) this.d.cancelRunning(actor.worker, t, false);
    return true;
  }
}
