/**
 * How many in-job workers this node runs at once, across jobs. Every worker (an actor's included)
 * counts against half of what the launcher can run (the rest is for the head's job tasks); workers
 * for plain tasks also against a soft limit of twice the node's CPUs (at least 4), not counting
 * those blocked in `get`, as Ray bounds its workers: 0-CPU tasks run a few at a time, not one
 * process each. A task that needs a new worker past either waits in its queue (holding nothing)
 * until a worker's process is gone or unblocks, the longest-idle worker being stopped to make room;
 * it is never failed for it. A slot is taken when a worker starts and given back when its process
 * is gone.
 */
import type { WorkerProc } from './jobState.js';

export class WorkerSlots {
  /** All workers, actors' included. */
  readonly max: number;
  /** Workers for plain tasks, not counting those blocked in `get`. */
  readonly soft: number;
  private live = 0;
  private taskWorkers = 0;
  private blocked = 0;
  /** Idle workers stopped to make room, not gone yet. */
  private evicting = 0;
  /** The launcher refused a start for want of capacity: no new worker until one is gone. */
  private full = false;

  constructor(launcherCapacity: number, cpus: number) {
    this.max = Math.max(1, Math.floor(launcherCapacity / 2));
    this.soft = Math.max(4, Math.ceil(2 * cpus));
  }

  get used(): number {
    return this.live;
  }

  /**
   * Whether a task can run now: on an idle worker of its shape (`key`), or on a new one (always
   * new for an actor). If not, the longest-idle worker of any job is stopped (one at a time) to
   * make room.
   */
  canRun(key: string, actor: boolean, jobWorkers: Iterable<WorkerProc>, all: () => Iterable<WorkerProc>, stop: (w: WorkerProc) => void): boolean {
    if (!actor) for (const w of jobWorkers) if (w.state === 'idle' && w.key === key && w.actorId === null) return true;
    const room = !this.full && this.live < this.max && (actor || this.taskWorkers - this.blocked < this.soft);
    if (room || this.evicting > 0) return room;
    let oldest: WorkerProc | null = null;
    for (const w of all()) if (w.state === 'idle' && w.actorId === null && (!oldest || w.idleSince < oldest.idleSince)) oldest = w;
    if (oldest) {
      oldest.evicted = true;
      this.evicting++;
      stop(oldest);
    }
    return false;
  }

  started(w: WorkerProc): void {
    w.slot = true;
    this.live++;
    if (w.actorId === null) this.taskWorkers++;
  }

  /** A worker's process is gone (or never started): its slot is free. */
  gone(w: WorkerProc): void {
    if (!w.slot) return;
    w.slot = false;
    this.live = Math.max(0, this.live - 1);
    if (w.actorId === null) this.taskWorkers = Math.max(0, this.taskWorkers - 1);
    if (w.blocked) this.setBlocked(w, false);
    if (w.evicted) this.evicting = Math.max(0, this.evicting - 1);
    this.full = false;
  }

  /** A worker waits in `get` (it does not count against the soft limit meanwhile), or woke. */
  setBlocked(w: WorkerProc, on: boolean): void {
    if (w.actorId !== null || w.blocked === on || (on && !w.slot)) return;
    w.blocked = on;
    this.blocked += on ? 1 : -1;
  }

  /** The launcher refused a start for want of capacity. */
  launcherFull(): void {
    this.full = true;
  }

  /** Try the launcher again. */
  retry(): void {
    this.full = false;
  }
}
