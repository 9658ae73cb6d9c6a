/**
 * Part of the engine (only engine.ts uses it): transactions over the store and the live state
 * that follows it. Nested calls are savepoints of the outer one. What a transaction announces is
 * run after the outermost commit, and dropped with a part that rolls back. A part that fails after
 * changing live state (`touch()`) makes the engine reload live state from the database once the
 * outermost transaction ends; a failure that changed nothing, such as a client's mistake thrown
 * before any change, costs only the rollback.
 */
import { RaysubError } from '../shared/errors.js';
import type { Logger } from '../shared/log.js';
import type { Store } from './db/index.js';

export class Transactions {
  private depth = 0;
  private touched = false;
  private reloadNeeded = false;
  private later: (() => void)[] = [];

  constructor(
    private readonly store: Store,
    private readonly log: Logger,
    /** Rebuild live state from the database; returns what to announce about it. */
    private readonly reload: () => (() => void)[],
    /** Runs after every outermost transaction, committed or not. */
    private readonly ended: () => void,
  ) {}

  get inside(): boolean {
    return this.depth > 0;
  }

  /** The running part changed live state: if it fails, live state must be reloaded. */
  touch(): void {
    this.touched = true;
  }

  /** Run `fn` after the outermost commit (now, outside any transaction). */
  afterCommit(fn: () => void): void {
    if (this.depth > 0) this.later.push(fn);
    else this.runSafely([fn]);
  }

  run<T>(fn: () => T): T {
    const outer = this.depth === 0;
    const mark = this.later.length;
    const touchedBefore = this.touched;
    this.touched = false;
    this.depth++;
    try {
      return this.store.tx(fn);
    } catch (err) {
      this.later.length = mark; // what the failed part announced did not happen
      if (this.touched) this.reloadNeeded = true;
      if (outer) this.logFailure(err);
      throw err;
    } finally {
      this.touched ||= touchedBefore;
      this.depth--;
      if (outer) this.end();
    }
  }

  private logFailure(err: unknown): void {
    if (err instanceof RaysubError && err.httpStatus < 500) {
      // A client's mistake: routine, and the HTTP answer says it already.
      this.log.info({ code: err.code, message: err.message, reload: this.reloadNeeded }, 'transaction refused');
    } else {
      this.log.error({ err }, this.reloadNeeded ? 'transaction failed; reloading live state from the database' : 'transaction failed');
    }
  }

  private end(): void {
    const later = this.later;
    this.later = [];
    this.touched = false;
    if (this.reloadNeeded) {
      this.reloadNeeded = false;
      later.push(...this.reload());
    }
    this.ended();
    this.runSafely(later);
  }

  private runSafely(fns: readonly (() => void)[]): void {
    for (const fn of fns) {
      try {
        fn();
      } catch (err) {
        this.log.error({ err }, 'an engine event listener failed');
      }
    }
  }
}
