/**
 * What one job makes its agent hold: bytes in the agent's memory (frames being read, inline
 * objects, queued tasks' arguments and records) and bytes in the job's object store on disk. A
 * charge past a limit is refused, and the job is over its share from then on.
 */
import { formatBytes } from '../../shared/resources.js';

export class JobBudget {
  held = 0;
  stored = 0;
  /** Why the job went over a limit (it is being failed), once it has. */
  over: string | null = null;

  constructor(
    /** The agent's memory this job may fill. */
    readonly heldLimit: number,
    /** Its large objects on this agent's disk. */
    readonly storeLimit: number,
    /** Told once, the first time the job goes over. */
    private readonly onOver: (why: string) => void,
  ) {}

  /**
   * Hold `bytes` more in memory for `what` (a function: described only when refused); false (and
   * the job is over its share) if that passes the limit.
   */
  hold(bytes: number, what: string | (() => string)): boolean {
    if (this.over) return false;
    if (this.held + bytes > this.heldLimit) {
      return this.exceeded(`${typeof what === 'string' ? what : what()} would make the agent hold ${formatBytes(this.held + bytes)} of memory for this job; its share is ${formatBytes(this.heldLimit)}`);
    }
    this.held += bytes;
    return true;
  }

  /** Whether `bytes` more would still fit in memory (nothing is charged). */
  fits(bytes: number): boolean {
    return !this.over && this.held + bytes <= this.heldLimit;
  }

  release(bytes: number): void {
    this.held = Math.max(0, this.held - bytes);
  }

  /** Store `bytes` more on disk for `what`; false (and the job is over its share) if that passes the limit. */
  store(bytes: number, what: string): boolean {
    if (this.over) return false;
    if (this.stored + bytes > this.storeLimit) {
      return this.exceeded(`${what} would make the job's object store on this node ${formatBytes(this.stored + bytes)}; its limit is ${formatBytes(this.storeLimit)}`);
    }
    this.stored += bytes;
    return true;
  }

  unstore(bytes: number): void {
    this.stored = Math.max(0, this.stored - bytes);
  }

  /** Go over the share for a reason of the caller's (a frame larger than its sender may send). */
  exceeded(why: string): false {
    if (!this.over) {
      this.over = why;
      this.onOver(why);
    }
    return false;
  }
}
