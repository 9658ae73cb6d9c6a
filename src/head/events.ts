import type { AttemptUsage, JobStatus } from '../shared/protocol/index.js';

/** What the engine announces, once the transaction that caused it has committed. */
export interface EngineEvents {
  /** A job changed status. */
  job: [jobId: string, status: JobStatus];
  /** A task attempt that ran ended, with what its cgroups counted (null counters: none did). */
  attemptEnded: [usage: AttemptUsage];
  /** A task was placed this long after it became eligible. */
  placed: [waitMs: number];
  /** A job is being stopped or failed: its in-job work on every node must go. */
  stopping: [jobId: string];
  /** A node was declared lost, left, or was replaced. */
  nodeLost: [nodeId: string];
  /** A node has something new to hear (assignments, kill orders, deliveries): answer its poll. */
  wake: [nodeId: string];
}
