/**
 * What this agent owes the head in its next report. Items are resent until a report carrying them
 * is answered; the head treats each by id, so a resend after a lost answer does no harm.
 */
import type { InjobReport } from '../../shared/protocol/index.js';

type Lists = Omit<InjobReport, 'address' | 'usage' | 'jobs' | 'counts'>;

const empty = (): Lists => ({ submit: [], results: [], received: [], done: [], actors: [], kill_actors: [], logs: [] });

export class Relay {
  submit: Lists['submit'] = [];
  results: Lists['results'] = [];
  received: Lists['received'] = [];
  done: Lists['done'] = [];
  actors: Lists['actors'] = [];
  kill_actors: Lists['kill_actors'] = [];
  logs: Lists['logs'] = [];
  private inflight: Lists | null = null;
  /** Deliveries from the head processed so far (acknowledged in the next poll). */
  deliveredSeq = 0;

  hasWork(): boolean {
    return this.submit.length + this.results.length + this.received.length + this.done.length + this.actors.length + this.kill_actors.length + this.logs.length > 0;
  }

  take(base: Pick<InjobReport, 'address' | 'usage' | 'jobs' | 'counts'>): InjobReport {
    const lists: Lists = this.inflight ? merge(this.inflight, this.lists()) : this.lists();
    this.inflight = lists;
    Object.assign(this, empty());
    return { ...base, ...lists };
  }

  private lists(): Lists {
    return { submit: this.submit, results: this.results, received: this.received, done: this.done, actors: this.actors, kill_actors: this.kill_actors, logs: this.logs };
  }

  sent(): void {
    this.inflight = null;
  }

  /** Keep what was in flight; it goes again, first, with the next report. */
  failed(): void {}
}

function merge(a: Lists, b: Lists): Lists {
  return {
    submit: [...a.submit, ...b.submit],
    results: [...a.results, ...b.results],
    received: [...a.received, ...b.received],
    done: [...a.done, ...b.done],
    actors: [...a.actors, ...b.actors],
    kill_actors: [...a.kill_actors, ...b.kill_actors],
    logs: [...a.logs, ...b.logs],
  };
}
