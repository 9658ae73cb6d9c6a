/**
 * How a task is stopped, as Ray's job supervisor does it: the signal from the job's
 * `RAY_JOB_STOP_SIGNAL` (SIGTERM or SIGINT; anything else is SIGTERM, with a word in the log), sent
 * to every process of the task, then the grace period from `RAY_JOB_STOP_WAIT_TIME_S` (else the
 * node's `--kill-grace`) for all of them to end, then SIGKILL. `raysub job submit --stop-signal`
 * and `--stop-grace` set the same two variables.
 */
import type { StopSignal } from './launcher.js';

export interface StopPolicy {
  signal: StopSignal;
  graceMs: number;
  /** What the job's log should say about a setting that could not be used. */
  notes: string[];
}

/** The longest grace period a job may ask for. */
export const MAX_STOP_GRACE_S = 3600;

export function stopPolicyOf(envVars: Readonly<Record<string, string>>, defaultGraceMs: number): StopPolicy {
  const notes: string[] = [];
  let signal: StopSignal = 'SIGTERM';
  const askedSignal = envVars.RAY_JOB_STOP_SIGNAL;
  if (askedSignal === 'SIGINT' || askedSignal === 'SIGTERM') signal = askedSignal;
  else if (askedSignal !== undefined) notes.push(`RAY_JOB_STOP_SIGNAL=${askedSignal} is not a valid stop signal (SIGTERM or SIGINT): the job is stopped with SIGTERM`);
  let graceMs = defaultGraceMs;
  const askedWait = envVars.RAY_JOB_STOP_WAIT_TIME_S;
  if (askedWait !== undefined) {
    const s = Number(askedWait);
    if (askedWait.trim() !== '' && Number.isFinite(s) && s >= 0) graceMs = Math.min(s, MAX_STOP_GRACE_S) * 1000;
    else notes.push(`RAY_JOB_STOP_WAIT_TIME_S=${askedWait} is not a number of seconds: the node's grace period (${defaultGraceMs / 1000}s) applies`);
  }
  return { signal, graceMs, notes };
}
