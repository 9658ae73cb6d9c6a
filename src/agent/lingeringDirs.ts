/**
 * Directories removed a while after their last use: one map in deadline order swept by one
 * timer, not a timer per use (a node finishing many tasks a second held thousands of pending
 * timers, each with its closure, until their time came).
 */
import { guarded } from '../shared/boundary.js';
import type { Logger } from '../shared/log.js';

export class LingeringDirs {
  /** Directory → when it is due, in insertion order; every entry lingers as long, so that is deadline order. */
  private readonly due = new Map<string, number>();
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly lingerMs: number,
    /** Remove one due directory (it may be in use again, or gone: that is for it to decide). */
    private readonly remove: (dir: string) => void,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  /** `dir` was used now: it goes `lingerMs` after its last use. */
  touch(dir: string): void {
    this.due.delete(dir);
    this.due.set(dir, this.now() + this.lingerMs);
    this.timer ??= this.arm(this.lingerMs);
  }

  /** Remove the directories that are due; how many still linger. */
  sweep(): number {
    const now = this.now();
    for (const [dir, at] of this.due) {
      if (at > now) break;
      this.due.delete(dir);
      this.remove(dir);
    }
    return this.due.size;
  }

  /** Forget what lingers (the agent is stopping) and stop the timer. */
  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.due.clear();
  }

  private arm(ms: number): NodeJS.Timeout {
    const fire = guarded(this.log, 'remove lingering directories', () => {
      this.timer = null;
      if (this.sweep() === 0) return;
      const next = this.due.values().next().value ?? this.now();
      this.timer = this.arm(Math.max(next - this.now(), 0));
    });
    return setTimeout(fire, ms).unref();
  }
}
