/**
 * What this agent owes the head in its next report. Items are resent until a report carrying them
 * is answered; the head treats each by id, so a resend after a lost answer does no harm. A report
 * carries at most MAX_REPORT_INJOB_BYTES of them (the rest waits for the next one, which goes at
 * once), and what an item holds of its job's share goes back once the head has it.
 */
import type { InjobReport } from '../../shared/protocol/index.js';
import { MAX_REPORT_INJOB_BYTES } from './limits.js';

type Lists = Omit<InjobReport, 'address' | 'usage' | 'jobs' | 'counts'>;
type ListName = keyof Lists;

const NAMES: readonly ListName[] = ['failed', 'bundles', 'requests', 'submit', 'results', 'received', 'done', 'actors', 'kill_actors', 'actors_gone', 'cancels', 'logs'];

const empty = (): Lists => ({ submit: [], results: [], received: [], done: [], actors: [], kill_actors: [], logs: [], failed: [], actors_gone: [], requests: [], cancels: [], bundles: [] });

/** About what an item adds to a report's JSON. */
function itemBytes(name: ListName, item: unknown): number {
  if (name === 'submit') {
    const t = item as Lists['submit'][number];
    const args = typeof t.args === 'string' ? t.args.length : 0;
    return 1024 + args + t.deps.reduce((n, d) => n + 100 + (d.value.kind === 'file' ? 0 : d.value.data.length), 0);
  }
  if (name === 'results') {
    const r = item as Lists['results'][number];
    return 300 + (r.value.kind === 'file' ? 0 : r.value.data.length);
  }
  if (name === 'logs') return 100 + (item as Lists['logs'][number]).data.length;
  if (name === 'failed') return 100 + (item as Lists['failed'][number]).message.length;
  if (name === 'requests') return 200 + JSON.stringify((item as Lists['requests'][number]).call).length;
  return 150;
}

export class Relay {
  private lists: Lists = empty();
  private inflight: Lists | null = null;
  /** Called once the head has an item (what it held of its job's share goes back). */
  private readonly onSent = new WeakMap<object, () => void>();
  private pending = 0;
  /** Deliveries from the head processed so far (acknowledged in the next poll). */
  deliveredSeq = 0;

  push<K extends ListName>(name: K, item: Lists[K][number], onSent?: () => void): void {
    (this.lists[name] as Lists[K][number][]).push(item);
    this.pending += itemBytes(name, item);
    if (onSent) this.onSent.set(item, onSent);
  }

  /** Bytes waiting to go to the head (in flight included). */
  get pendingBytes(): number {
    return this.pending;
  }

  hasWork(): boolean {
    return NAMES.some((n) => this.lists[n].length > 0);
  }

  /**
   * The in-job part of the next report: what was in flight and not answered goes again, alone;
   * else the oldest items of each list, up to `maxBytes` (at least one).
   */
  take(base: Pick<InjobReport, 'address' | 'usage' | 'jobs' | 'counts'>, maxBytes = MAX_REPORT_INJOB_BYTES): InjobReport {
    if (!this.inflight) {
      const out = empty();
      let bytes = 0;
      for (const name of NAMES) {
        const list = this.lists[name] as unknown[];
        let n = 0;
        while (n < list.length) {
          const b = itemBytes(name, list[n]);
          if (bytes > 0 && bytes + b > maxBytes) break;
          bytes += b;
          n++;
        }
        (out[name] as unknown[]) = list.slice(0, n);
        (this.lists[name] as unknown[]) = list.slice(n);
      }
      this.inflight = out;
    }
    return { ...base, ...this.inflight };
  }

  /** The head answered the report: what it carried is delivered. */
  sent(): void {
    const done = this.inflight;
    this.inflight = null;
    if (!done) return;
    for (const name of NAMES) {
      for (const item of done[name] as object[]) {
        this.pending -= itemBytes(name, item);
        this.onSent.get(item)?.();
      }
    }
  }

  /** The report did not get through: what was in flight goes again, first, with the next report. */
  unsent(): void {}
}
