/**
 * What a job's processes may make their agent hold. Everything a job sends on its socket is
 * counted against the job: a job over a limit gets a clear error and is failed (INJOB_LIMIT_EXCEEDED),
 * and the agent's own memory stays flat. docs/tasks.md ("Limits") lists these.
 */
import { injobSizes } from '../../shared/protocol/index.js';
import { openFileLimit } from '../../shared/httpLimits.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

/** A frame's JSON header (the libraries send at most 512 KiB: batches of submissions and gets are cut to fit). */
export const MAX_HEADER_BYTES = injobSizes.MAX_HEADER_BYTES;
/** A header costs this many times its size while it is parsed and handled (the objects it becomes). */
export const HEADER_COST_FACTOR = 8;
/** A frame's payload from a process without a memory limit (a process with one may send no frame larger than its limit). */
export const MAX_PAYLOAD_BYTES = 2 * GiB - 1;
/**
 * The agent's own memory one job may fill (frames being read, inline objects, queued tasks'
 * arguments, its records): the job's memory request, and never more than this.
 */
export const MAX_HELD_BYTES = 256 * MiB;
/** ...and at least this, whatever the job's memory request. */
export const MIN_HELD_BYTES = 16 * MiB;
/** What one record of a job costs the agent beyond its bytes (an object table entry, a queued task). */
export const ENTRY_COST = 1024;
export const TASK_COST = 1024;
/** Large objects of one job on one agent's disk: at most this, and at most half the disk's free space when the job started there. */
export const MAX_STORE_BYTES = 32 * GiB;
/** Connections one job may hold open to one agent. */
export const MAX_CONNECTIONS = 1024;

/**
 * Connections all jobs together may hold open to one agent: an eighth of its open-file limit (at
 * least 64), so that jobs can never take the descriptors the agent (and, for the embedded agent,
 * the head's HTTP server, SQLite and logs) need.
 */
export function nodeConnectionCap(files = openFileLimit() ?? 4096): number {
  return Math.max(64, Math.floor(files / 8));
}
/** A connection that has not presented the job's token by then is closed. */
export const HELLO_TIMEOUT_MS = 10_000;
/** Answers queued for a client that does not read them: past this the agent stops reading its requests until it catches up. */
export const MAX_UNREAD_BYTES = 64 * MiB;
/** The in-job part of one report to the head (what does not fit goes in the next one, at once). */
export const MAX_REPORT_INJOB_BYTES = 8 * MiB;
/** Inline dependencies a task relayed to the head carries; the rest travel by location. */
export const MAX_RELAYED_INLINE_BYTES = 1 * MiB;
/** Worker output relayed through the head at once, per job: past this it is dropped, saying so. */
export const MAX_RELAYED_LOG_BYTES = 4 * MiB;
