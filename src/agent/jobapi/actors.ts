/**
 * Actors on this node: each a dedicated worker holding one instance, created with the resources
 * it asked for (held until it dies), whose calls run one at a time in the order they arrive.
 */
import type { JobState } from './jobState.js';
import type { NodeLedger } from './ledger.js';
import { errorValue, type ObjValue } from './objects.js';
import type { ExecutorHooks } from './executor.js';
import { depError, type Actor, type Task, type WorkerProc } from './types.js';

export interface ActorDeps {
  ledger: NodeLedger;
  hooks: ExecutorHooks;
  killGraceMs: number;
  startWorker(job: JobState, task: Task, key: string, actorId: string): WorkerProc;
  send(w: WorkerProc, task: Task): void;
  pump(): void;
}

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
    const actor: Actor = { id, job, worker: null, holding: task.holding, queue: [], busy: task, ready: false, dead: null, name: task.spec.name.replace(/\.__init__$/, '') };
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
    if (!actor) {
      const parked = task.job.parkedCalls.get(task.spec.actor_id ?? '');
      if (parked) return void parked.push(task);
      return this.d.hooks.finished(task, errorValue('ActorDiedError', `actor ${task.spec.actor_id ?? '?'} is not known on this node`, task.spec.name));
    }
    if (actor.dead) return this.d.hooks.finished(task, errorValue('ActorDiedError', `actor ${actor.name} is dead: ${actor.dead.message}`, task.spec.name));
    actor.queue.push(task);
    this.pump(actor);
  }

  private pump(actor: Actor): void {
    const w = actor.worker;
    if (!actor.ready || actor.busy || actor.dead || !w?.conn) return;
    const next = actor.queue.shift();
    if (!next) return;
    actor.busy = next;
    this.d.send(w, next);
  }

  result(w: WorkerProc, task: Task, value: ObjValue, ok: boolean): void {
    const actor = w.job.actors.get(w.actorId ?? '');
    if (!actor) return;
    actor.busy = null;
    if (task.spec.kind === 'actor_create') {
      if (!ok) {
        this.d.hooks.finished(task, value);
        const e = value.kind === 'error' ? value.error : null;
        this.died(actor, `its constructor raised ${e?.type ?? 'an error'}: ${e?.message ?? ''}`);
        return;
      }
      actor.ready = true;
      w.job.counts.actors_alive++;
    }
    this.d.hooks.finished(task, value);
    this.pump(actor);
  }

  died(actor: Actor, why: string): void {
    if (actor.dead) return;
    actor.dead = { type: 'ActorDiedError', message: why, traceback: '', task: actor.name };
    if (actor.ready) actor.job.counts.actors_alive = Math.max(0, actor.job.counts.actors_alive - 1);
    actor.job.counts.actors_dead++;
    const failed = [...(actor.busy ? [actor.busy] : []), ...actor.queue];
    actor.busy = null;
    actor.queue = [];
    for (const t of failed) this.d.hooks.finished(t, errorValue('ActorDiedError', `actor ${actor.name} died before ${t.spec.name} finished: ${why}`, t.spec.name));
    if (actor.holding) this.d.ledger.release(actor.holding);
    actor.holding = null;
    const w = actor.worker;
    if (w && w.state !== 'dead') w.handle?.terminate(this.d.killGraceMs).catch(() => undefined);
    if (w) w.state = w.handle ? w.state : 'dead';
    this.d.pump();
  }

  kill(job: JobState, actorId: string): boolean {
    const actor = job.actors.get(actorId);
    if (!actor) return false;
    this.died(actor, 'killed by raysub.kill()');
    return true;
  }
}
