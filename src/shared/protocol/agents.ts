import { z } from 'zod';
import { resourceMapSchema } from './common.js';
import { injobAnswerSchema, injobPollSchema, injobReportSchema } from './injob.js';
import { jobContextSchema } from './jobContext.js';

/**
 * The agent <-> head protocol. Assignments are fenced by (task_id, attempt); events carry a
 * per-agent sequence number and are applied at most once; logs are addressed by byte offset.
 */

export const taskRefSchema = z.object({ task_id: z.string(), attempt: z.number().int().min(1) });
export type TaskRef = z.infer<typeof taskRefSchema>;

export const sandboxModeSchema = z.enum(['bwrap', 'process', 'none']);
export type SandboxMode = z.infer<typeof sandboxModeSchema>;

export const nodeTotalsSchema = z.object({
  num_cpus: z.number().min(0),
  num_gpus: z.number().int().min(0),
  memory: z.number().int().min(0),
  resources: resourceMapSchema,
  /**
   * How many tasks the node can run at once, whatever their size (its sandbox's pool of task
   * users, processes); absent from agents that predate it (then unlimited).
   */
  task_slots: z.number().int().min(0).optional(),
});
export type NodeTotals = z.infer<typeof nodeTotalsSchema>;

/** How a node runs workers: its sandbox mode, a description, whether memory is limited, and which limits hold. */
export const sandboxInfoSchema = z.object({
  mode: sandboxModeSchema,
  detail: z.string(),
  cgroups: z.boolean(),
  /** The cgroup limits the node enforces (memory, cpu, cpuset, pids, devices); absent from older agents. */
  limits: z.array(z.string().max(32)).max(16).optional(),
});
export type SandboxInfo = z.infer<typeof sandboxInfoSchema>;

/**
 * A node's name: it is shown, logged and used to name the agent's default work dir, so it is
 * 1-128 of letters, digits, ".", "_" and "-", starting with a letter or digit (never "..", "/" or NUL).
 */
export const NODE_NAME_RULE = 'a node name is 1-128 letters, digits, ".", "_" or "-", starting with a letter or digit';
export const nodeNameSchema = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/, NODE_NAME_RULE);

/**
 * Why a live node takes no new work: its agent found its work dir unwritable (a probe that creates,
 * writes, syncs and removes a small file failed). It holds until a probe succeeds again.
 */
export const nodeConditionSchema = z.object({
  reason: z.string().max(2000),
  /** Since when (ms since the epoch). */
  since: z.number().int().min(0),
});
export type NodeCondition = z.infer<typeof nodeConditionSchema>;

export const registerRequestSchema = z.object({
  node_name: nodeNameSchema,
  hostname: z.string().max(256),
  pid: z.number().int(),
  version: z.string(),
  totals: nodeTotalsSchema,
  sandbox: sandboxInfoSchema,
  /** A previous node id, when the agent re-registers after the head declared it lost. */
  previous_node_id: z.string().optional(),
  /** The node is unhealthy already (absent: healthy, and from agents that predate it). */
  unhealthy: nodeConditionSchema.optional(),
});
export type RegisterRequest = z.infer<typeof registerRequestSchema>;

export const registerResponseSchema = z.object({
  node_id: z.string(),
  heartbeat_interval_ms: z.number(),
  lease_ms: z.number(),
  poll_wait_ms: z.number(),
  /** What agents present to each other's object servers. */
  peer_token: z.string().optional(),
  /** Something the agent's operator should hear (a deprecated credential...). */
  warning: z.string().optional(),
  /**
   * The head's log cap: it keeps the first `max_job_bytes` of a job's output and the last
   * `tail_bytes` of each attempt's output past that, so an agent holding an attempt's output
   * while the head is away need keep no more (absent: no cap, keep everything).
   */
  log_cap: z.object({ max_job_bytes: z.number().int().positive(), tail_bytes: z.number().int().min(0) }).optional(),
});
export type RegisterResponse = z.infer<typeof registerResponseSchema>;

export const taskResourcesSchema = z.object({
  cpus: z.number(),
  gpus: z.number(),
  memory: z.number(),
  custom: resourceMapSchema,
});

/** One attempt of one of a job's tasks, for the node that runs it; `job` is what every worker of the job needs. */
export const assignmentSchema = z.object({
  task_id: z.string(),
  attempt: z.number().int(),
  task_index: z.number().int(),
  task_count: z.number().int(),
  /** Its index in the job's array (`--array`), which the task sees as RAYSUB_ARRAY_INDEX (absent: task_index). */
  array_index: z.number().int().optional(),
  entrypoint: z.string(),
  /** What placement counted for it (its memory is a limit only as `job.memory` says). */
  resources: taskResourcesSchema,
  gpu_ids: z.array(z.number().int()),
  timeout_s: z.number().nullable(),
  job: jobContextSchema,
});
export type Assignment = z.infer<typeof assignmentSchema>;

export const exitOutcomeSchema = z.enum([
  'exited', // the process ended by itself (exit code may be 0 or not)
  'signaled', // killed by a signal nobody on our side sent
  'oom', // killed by the kernel for exceeding its memory limit
  'evicted', // killed by its agent to keep the node's disk from filling (`--min-free-disk`)
  'timeout', // killed by the agent at its deadline
  'killed', // killed on the head's order (stop, or fenced)
  'setup_failed', // runtime env or package could not be prepared
  'spawn_failed', // the sandbox or process could not be started
  'sandbox_unavailable', // the node cannot provide the isolation the job requires
]);
export type ExitOutcome = z.infer<typeof exitOutcomeSchema>;

/** An attempt's CPU time (seconds) and peak memory (bytes), as its cgroups counted them; null where none does. */
export const attemptUsageSchema = z.object({
  cpu_s: z.number().min(0).max(1e9).nullable(),
  peak_memory: z.number().int().min(0).max(2 ** 53).nullable(),
});
export type AttemptUsage = z.infer<typeof attemptUsageSchema>;

export const agentEventSchema = z.discriminatedUnion('type', [
  z.object({
    seq: z.number().int().min(1),
    type: z.literal('started'),
    task_id: z.string(),
    attempt: z.number().int(),
    at: z.number(),
  }),
  z.object({
    seq: z.number().int().min(1),
    type: z.literal('exited'),
    task_id: z.string(),
    attempt: z.number().int(),
    at: z.number(),
    outcome: exitOutcomeSchema,
    exit_code: z.number().int().nullable(),
    signal: z.string().nullable(),
    message: z.string().max(20_000).nullable(),
    /** Total bytes of output this attempt produced; the head checks it holds them all. */
    log_bytes: z.number().int().min(0),
    /** What the attempt's cgroups counted (absent: nothing ran; a null counter: no cgroup counts it on this node). */
    usage: attemptUsageSchema.optional(),
    /**
     * `node`: the attempt failed for a fault of the node, not the job's (its work dir could not be
     * written); nothing of the job ran. A head that predates it reads only `outcome` (setup_failed).
     */
    fault: z.literal('node').optional(),
  }),
]);
export type AgentEvent = z.infer<typeof agentEventSchema>;

export const logStreamSchema = z.enum(['stdout', 'stderr', 'system']);
export type LogStream = z.infer<typeof logStreamSchema>;

export const logChunkSchema = z.object({
  task_id: z.string(),
  attempt: z.number().int(),
  offset: z.number().int().min(0),
  /**
   * Bytes from `offset` on that the agent dropped, past the head's log cap, while the head was
   * away (the head would have dropped them too); `data` starts after them.
   */
  skipped: z.number().int().min(0).optional(),
  stream: logStreamSchema,
  /** base64: output is bytes, not necessarily UTF-8 */
  data: z.string(),
  /** When the agent read the chunk's first byte from the worker (ms since the epoch; absent: the head's receipt time). */
  captured_at: z.number().int().min(0).optional(),
});
export type LogChunk = z.infer<typeof logChunkSchema>;

export const reportRequestSchema = z.object({
  events: z.array(agentEventSchema).max(10_000),
  logs: z.array(logChunkSchema).max(10_000),
  running: z.array(taskRefSchema),
  usage: z.object({ cache_bytes: z.number().optional() }).passthrough().optional(),
  /** The in-job task API's traffic (absent from agents that predate it). */
  injob: injobReportSchema.optional(),
  /** Present while the node is unhealthy: it takes no new work (absent: healthy). */
  unhealthy: nodeConditionSchema.optional(),
});
export type ReportRequest = z.infer<typeof reportRequestSchema>;

export const logAckSchema = z.object({
  task_id: z.string(),
  attempt: z.number().int(),
  /** Where the head stands in this attempt's output; the agent resends from here. */
  offset: z.number().int(),
  /** The attempt is no longer current: drop its buffered output. */
  stale: z.boolean(),
});
export type LogAck = z.infer<typeof logAckSchema>;

export const reportResponseSchema = z.object({
  acked_seq: z.number().int(),
  logs: z.array(logAckSchema),
  kills: z.array(taskRefSchema),
  /**
   * Assignments for this node that the report's `running` does not list: what the head placed
   * when this report freed resources, and anything an earlier answer or poll failed to deliver.
   */
  assignments: z.array(assignmentSchema).optional(),
  injob: injobAnswerSchema.optional(),
});
export type ReportResponse = z.infer<typeof reportResponseSchema>;

export const pollRequestSchema = z.object({
  known: z.array(taskRefSchema),
  wait_ms: z.number().int().min(0).max(60_000),
  /** In-job deliveries up to this sequence number arrived; the head drops them. */
  injob_ack: z.number().int().min(0).optional(),
  /** Jobs with in-job state on this node, so the answer can say which have ended. */
  injob_jobs: z.array(z.string()).optional(),
});
export type PollRequest = z.infer<typeof pollRequestSchema>;

export const pollResponseSchema = z.object({
  assignments: z.array(assignmentSchema),
  kills: z.array(taskRefSchema),
  injob: injobPollSchema.optional(),
});
export type PollResponse = z.infer<typeof pollResponseSchema>;
