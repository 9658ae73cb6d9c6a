/**
 * Error boundaries for callbacks nobody awaits (timers, stream and child-process events, event
 * listeners): what they throw, or the promise they return rejects with, is logged and the process
 * keeps serving. Node would otherwise end the process on the first such error.
 */
import type { Logger } from './log.js';

/** Run `fn` now; log what it throws or rejects with, instead of letting it escape. */
export function runGuarded(log: Logger, what: string, fn: () => unknown): void {
  try {
    const out = fn();
    if (out instanceof Promise) out.catch((err: unknown) => log.error({ err }, `${what} failed`));
  } catch (err) {
    log.error({ err }, `${what} failed`);
  }
}

/** `fn` wrapped so that it can be handed to a timer or an event: errors are logged, never thrown. */
export function guarded<A extends unknown[]>(log: Logger, what: string, fn: (...args: A) => unknown): (...args: A) => void {
  return (...args: A) => runGuarded(log, what, () => fn(...args));
}
