/**
 * Collecting the head's unused packages: a package no job and no schedule names, and that nobody
 * uploaded or asked about for the TTL (a client checks a package, then submits the job naming
 * it), is deleted. A pass is synchronous from the references it reads to the files it removes,
 * so no submission can slip in between.
 */
import type { Logger } from '../shared/log.js';
import type { PackageStore } from './packageStore.js';

export interface PackageReferences {
  isReferenced(name: string): boolean;
}

export class PackageCollector {
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly store: PackageStore,
    private readonly refs: PackageReferences,
    private readonly ttlMs: number,
    private readonly log: Logger,
  ) {}

  /** One pass; returns the names removed. */
  collect(now = Date.now()): string[] {
    const removed: string[] = [];
    for (const p of this.store.list()) {
      if (now - p.touchedAt < this.ttlMs || this.refs.isReferenced(p.name)) continue;
      this.store.remove(p.name);
      removed.push(p.name);
    }
    if (removed.length > 0) this.log.info({ removed }, 'removed packages no job or schedule uses');
    return removed;
  }

  start(): void {
    if (this.timer) return;
    const every = Math.max(1000, Math.min(60_000, this.ttlMs / 2));
    this.timer = setInterval(() => {
      try {
        this.collect();
      } catch (err) {
        this.log.error({ err }, 'package collection failed; retrying at the next pass');
      }
    }, every);
    this.timer.unref();
  }

  shutdown(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
