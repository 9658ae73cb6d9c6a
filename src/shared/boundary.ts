/**
 * Error boundaries for callbacks nobody awaits: timers, stream and child-process events. A throw
 * or a rejected promise there would end the process with Node's default trace; through
 * `guarded` it is logged and the process keeps serving.
 */
import type { Logger } from './log.js';

/** `fn` wrapped so that whatever it throws or rejects with is logged at error level as `what`. */
export function guarded<A extends unknown[]>(log: Logger, what: string, fn: (...args: A) => unknown): (...args: A) => void {
  return (...args: A) => {
    try {
      const r = fn(...args);
      if (r instanceof Promise) r.catch((err: unknown) => log.error({ err }, `${what} failed`));
    } catch (err) {
      log.error({ err }, `${what} failed`);
    }
  };
}

/** Run `fn` now, inside the boundary: what it throws or rejects with is logged as `what`. */
export function runGuarded(log: Logger, what: string, fn: () => unknown): void {
  guarded(log, what, fn)();
}

/** Run a promise nobody waits for, logging its failure instead of leaving it unhandled. */
export function background(log: Logger, what: string, p: Promise<unknown>): void {
  p.catch((err: unknown) => log.error({ err }, `${what} failed`));
}

let rejectionsContained = false;

/**
 * For the long-running processes (head, agent): a rejected promise that nothing handled is logged
 * and the process keeps serving, instead of Node ending it. The last boundary behind `guarded`.
 */
export function containUnhandledRejections(log: Logger): void {
  if (rejectionsContained) return;
  rejectionsContained = true;
  process.on('unhandledRejection', (reason: unknown) => log.error({ err: reason }, 'a promise nothing waited for failed; still serving'));
}
