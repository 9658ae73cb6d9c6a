/**
 * Job tasks the head placed on this node that wait for resources in-job work holds (the head's
 * view lags the node's): first in, first served, before any in-job task is placed.
 */
import type { Holding } from './ledger.js';

interface Waiter {
  fits: () => Holding | null;
  resolve: (h: Holding) => void;
}

export class JobTaskWaits {
  private readonly waiters: Waiter[] = [];

  /** The holding once `fits` gives one; rejects if `signal` aborts first. */
  wait(fits: () => Holding | null, signal: AbortSignal): Promise<Holding> {
    const now = fits();
    if (now) return Promise.resolve(now);
    return new Promise((resolve, reject) => {
      const w: Waiter = { fits, resolve };
      this.waiters.push(w);
      signal.addEventListener('abort', () => {
        const i = this.waiters.indexOf(w);
        if (i >= 0) this.waiters.splice(i, 1);
        reject(new Error('aborted'));
      });
    });
  }

  /** Serve waiters in order while their resources fit; true when none is left waiting. */
  serve(): boolean {
    while (this.waiters.length > 0) {
      const w = this.waiters[0];
      const h = w?.fits();
      if (!w || !h) return false;
      this.waiters.shift();
      w.resolve(h);
    }
    return true;
  }
}
