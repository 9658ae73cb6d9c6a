/**
 * A job as the API answers it: Ray's JobDetails key for key, in Ray's words, and everything raysub
 * adds under `raysub`. Built from the job's row; the queue, tasks and in-job counts come from the
 * caller.
 */
import crypto from 'node:crypto';
import { isTerminal, type InjobCounts, type JobDetails, type QueueInfo, type TaskInfo } from '../shared/protocol/index.js';
import type { TaskRequest } from '../shared/resources.js';
import type { JobRow, UsageTotals } from './db/index.js';
import { rayErrorType, rayStatusMessage } from './rayVocabulary.js';

export interface JobViewParts {
  queue: QueueInfo | null;
  /** raysub's message for a job that has not ended (its progress, or why it waits). */
  progress: string | null;
  counts: Record<string, number>;
  injob: InjobCounts | null;
  /** Its attempts that ran, summed up. */
  usage: UsageTotals;
  tasks?: TaskInfo[];
  /** The driver node's name, and its agent's HTTP address when known. */
  driverNode: { name: string | null; address: string | null } | null;
}

/**
 * A node id in Ray's shape (56 hex characters, as Ray's NodeID prints), derived from raysub's:
 * stable, and the same for every job that ran on the node.
 */
export function rayNodeId(nodeId: string): string {
  let id = rayNodeIds.get(nodeId);
  if (id === undefined) {
    id = crypto.createHash('sha224').update(nodeId).digest('hex');
    // A page of jobs names a few nodes many times; the cache is bounded for a head that sees many.
    if (rayNodeIds.size >= MAX_CACHED_NODE_IDS) rayNodeIds.clear();
    rayNodeIds.set(nodeId, id);
  }
  return id;
}

const MAX_CACHED_NODE_IDS = 256;
const rayNodeIds = new Map<string, string>();

function parseObject(text: string): Record<string, unknown> | null {
  const value = JSON.parse(text) as unknown;
  return value && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
}

/** A job's `after_jobs` column as the API shows it. */
export function dependenciesOf(row: Pick<JobRow, 'after_jobs'>): { after: string[]; after_any: string[] } {
  const deps = row.after_jobs ? (JSON.parse(row.after_jobs) as { id: string; any: boolean }[]) : [];
  return { after: deps.filter((d) => !d.any).map((d) => d.id), after_any: deps.filter((d) => d.any).map((d) => d.id) };
}

function round(n: number | null, digits: number): number | null {
  return n === null ? null : Math.round(n * 10 ** digits) / 10 ** digits;
}

export function jobDetailsOf(row: JobRow, p: JobViewParts): JobDetails {
  const request = JSON.parse(row.request) as TaskRequest;
  const runtimeEnv = parseObject(row.runtime_env);
  const ended = isTerminal(row.status);
  let message: string | null;
  if (row.status === 'FAILED') message = row.ray_message ?? row.message;
  else message = rayStatusMessage(row.status, { request, hasRuntimeEnv: Object.keys(runtimeEnv ?? {}).length > 0, waiting: row.status === 'PENDING' ? (p.queue?.reason ?? null) : null });
  return {
    type: 'SUBMISSION',
    job_id: null,
    submission_id: row.id,
    driver_info: null,
    status: row.status,
    entrypoint: row.entrypoint,
    message,
    error_type: ended ? rayErrorType(row.error_type, row.exit_code) : null,
    start_time: row.created_at,
    end_time: row.end_time,
    metadata: parseObject(row.metadata) as Record<string, string> | null,
    runtime_env: runtimeEnv,
    driver_agent_http_address: row.driver_node_id ? (p.driverNode?.address ?? null) : null,
    driver_node_id: row.driver_node_id ? rayNodeId(row.driver_node_id) : null,
    driver_exit_code: row.exit_code,
    raysub: {
      created_at: row.created_at,
      started_at: row.start_time,
      error_type: ended ? row.error_type : null,
      message: ended ? row.message : p.progress,
      driver_node: row.driver_node_id ? { id: row.driver_node_id, name: p.driverNode?.name ?? null } : null,
      entrypoint_num_cpus: request.cpus,
      entrypoint_num_gpus: request.gpus,
      entrypoint_memory: request.memory,
      entrypoint_resources: request.custom,
      parallel: row.parallel,
      max_retries: row.max_retries,
      retry_backoff_s: row.retry_backoff_s,
      timeout_s: row.timeout_s,
      priority: row.priority,
      wait_for_capacity: row.wait_for_capacity === 1,
      memory_limit: row.memory_limit === 1,
      driver_on_head: row.driver_on_head === 1,
      schedule: row.schedule,
      held: row.held === 1,
      ...dependenciesOf(row),
      max_concurrent: row.max_concurrent,
      array: row.array_spec,
      usage:
        p.usage.attempts === 0
          ? { cpu_s: null, peak_memory: null, run_s: null, gpu_s: null }
          : { cpu_s: round(p.usage.cpu_s, 3), peak_memory: p.usage.peak_memory, run_s: round(p.usage.run_s, 3), gpu_s: round(p.usage.gpu_s, 3) },
      task_counts: p.counts,
      queue: row.status === 'PENDING' ? p.queue : null,
      injob: p.injob,
      ...(p.tasks ? { tasks: p.tasks } : {}),
    },
  };
}
