/**
 * What an ended attempt means for its task: the verdict (succeeded, failed with which error type,
 * stopped) and whether and when it is retried. Pure functions of the job's policy and the outcome,
 * so the whole table is tested in process.
 */
import type { ExitOutcome, JobErrorType } from '../shared/protocol/index.js';

export interface Verdict {
  state: 'SUCCEEDED' | 'FAILED' | 'STOPPED';
  errorType: JobErrorType | null;
  message: string | null;
  retryable: boolean;
}

export interface VerdictJob {
  readonly stopRequested: boolean;
  readonly failedTask: number | null;
  readonly timeoutS: number | null;
  readonly maxRetries: number;
  readonly retryBackoffS: number;
}

/**
 * How an attempt ended, as the head records it: what its agent reported, `lost` (its node was
 * declared lost) or `node_fault` (its agent could not prepare it for a fault of the node's own).
 */
export type AttemptOutcome = ExitOutcome | 'lost' | 'node_fault';

export interface AttemptEnd {
  taskIdx: number;
  outcome: AttemptOutcome;
  exitCode: number | null;
  signal: string | null;
  message: string | null;
}

/** The longest wait before a retry. */
export const MAX_RETRY_DELAY_MS = 300_000;

export function verdictOf(job: VerdictJob, end: AttemptEnd): Verdict {
  const { outcome, exitCode, signal, message } = end;
  if (outcome === 'exited' && exitCode === 0) return { state: 'SUCCEEDED', errorType: null, message: null, retryable: false };
  if (job.stopRequested) return { state: 'STOPPED', errorType: 'STOPPED_BY_USER', message: 'stopped by the user', retryable: false };
  if (job.failedTask !== null && job.failedTask !== end.taskIdx) {
    return { state: 'STOPPED', errorType: null, message: `cancelled because task ${job.failedTask} failed`, retryable: false };
  }
  switch (outcome) {
    case 'exited':
      return { state: 'FAILED', errorType: 'ENTRYPOINT_FAILED', message: `exited with code ${exitCode}`, retryable: true };
    case 'signaled':
      return { state: 'FAILED', errorType: 'ENTRYPOINT_FAILED', message: `killed by ${signal ?? 'a signal'}`, retryable: true };
    case 'oom':
      return { state: 'FAILED', errorType: 'OOM_KILLED', message: message ?? 'killed for using more memory than it requested', retryable: true };
    case 'evicted':
      return { state: 'FAILED', errorType: 'DISK_PRESSURE', message: message ?? "killed to keep its node's disk from filling", retryable: true };
    case 'lost':
      return { state: 'FAILED', errorType: 'NODE_LOST', message: message ?? 'its node was lost', retryable: true };
    case 'node_fault':
      // Nothing of the job ran: the node is to blame, and another node may do.
      return { state: 'FAILED', errorType: 'NODE_UNHEALTHY', message: message ?? 'its node could not prepare it', retryable: true };
    case 'timeout':
      return { state: 'FAILED', errorType: 'TIMEOUT', message: message ?? `timed out after ${job.timeoutS}s`, retryable: false };
    case 'setup_failed':
      return { state: 'FAILED', errorType: 'RUNTIME_ENV_SETUP_FAILED', message: message ?? 'runtime environment setup failed', retryable: false };
    case 'sandbox_unavailable':
      return { state: 'FAILED', errorType: 'SANDBOX_UNAVAILABLE', message: message ?? 'the node cannot provide the required sandbox', retryable: false };
    case 'spawn_failed':
      return { state: 'FAILED', errorType: 'ENTRYPOINT_FAILED', message: message ?? 'the process could not be started', retryable: false };
    case 'killed':
      return { state: 'FAILED', errorType: 'ENTRYPOINT_FAILED', message: message ?? 'killed by its agent', retryable: false };
  }
}

/**
 * When attempt `attempt` (1-based) failed with `v` at `at`: the retry's earliest start and the
 * delay, or null when the task is not retried. Back-off doubles per attempt, capped.
 */
export function retryOf(job: VerdictJob, attempt: number, v: Verdict, at: number): { notBefore: number; delayMs: number } | null {
  if (v.state !== 'FAILED' || !v.retryable || attempt > job.maxRetries) return null;
  const delayMs = Math.min(job.retryBackoffS * 1000 * 2 ** (attempt - 1), MAX_RETRY_DELAY_MS);
  return { notBefore: at + delayMs, delayMs };
}
