import { z } from 'zod';
import { jobContextSchema } from './jobContext.js';

/**
 * The in-job task API. Two wires:
 *
 * - **job socket** (client library <-> its own agent, a Unix socket per job): frames of
 *   `[u32 header length][u32 payload length][JSON header][payload bytes]`, big-endian. The header
 *   is one of the messages below; bulk bytes (pickled or v8-serialised arguments and results)
 *   travel in the payload, each message saying how many bytes of it are its own (`len`).
 * - **in-job relay** (agent <-> head, inside the existing report and poll calls): tasks an agent
 *   cannot place itself, their results on the way back to their owner, actor calls for actors on
 *   other nodes. Bytes are base64 there; large values never travel this way (only locations).
 */

import { injobResourcesSchema, jobIdSchema, nodeIdSchema, objectIdSchema, ownerSchema, workerIdSchema } from './injobBase.js';
import { clientCallSchema, injobReplySchema, injobRequestSchema, MAX_BUNDLES, replyErrorSchema } from './injobRequests.js';

export const langSchema = z.enum(['python', 'node']);
export type Lang = z.infer<typeof langSchema>;

export const fnRefSchema = z.object({
  module: z.string().max(4096),
  name: z.string().max(1024),
  /** The entrypoint script (relative to the working dir when inside it), for functions defined in it. */
  main_file: z.string().max(4096).nullable().optional(),
});
export type FnRef = z.infer<typeof fnRefSchema>;

/**
 * The module of a function or class that travels by value: its name is the id of the object
 * holding its pickled bytes, which the task lists among its dependencies. A worker keeps those
 * bytes, so the agent sends them only with the first task of that function each worker runs.
 */
export const BY_VALUE_MODULE = '__raysub_fn__';


export const refSchema = z.object({ id: objectIdSchema, owner: ownerSchema });
export type RefInfo = z.infer<typeof refSchema>;

export const taskKindSchema = z.enum(['task', 'actor_create', 'actor_call']);
export type TaskKind = z.infer<typeof taskKindSchema>;

/** A task's results past its first: `num_returns` objects, or the values a generator yields. */
export const MAX_RETURNS = 100_000;
export const MAX_YIELDS = 10_000_000;
/** The object id of a task's `index`-th return or yielded value (the library names them the same way). */
export const returnId = (taskId: string, index: number): string => `${taskId}_${index}`;
/** A task id with returns leaves room for `_<index>` within an object id's 64 characters. */
const MAX_RETURNING_ID = 64 - 1 - String(MAX_YIELDS).length;

/** Where a task or actor must run: a placement group's bundle (-1: any of the group's), or a node. */
export const placementSchema = z.union([
  z.object({ group: objectIdSchema, bundle: z.number().int().min(-1).max(MAX_BUNDLES - 1) }),
  z.object({ node: nodeIdSchema, soft: z.boolean() }),
]);
export type Placement = z.infer<typeof placementSchema>;

/** A task as its submitter describes it (job socket). Its id is also its result's object id. */
export const submitSpecSchema = z.object({
  id: objectIdSchema,
  kind: taskKindSchema,
  fn: fnRefSchema,
  name: z.string().max(256),
  actor_id: objectIdSchema.optional(),
  method: z.string().max(256).optional(),
  resources: injobResourcesSchema,
  max_retries: z.number().int().min(-1).max(1000),
  retry_exceptions: z.boolean(),
  /** Objects passed as top-level arguments: resolved before the task runs. */
  deps: z.array(refSchema).max(10_000),
  args_len: z.number().int().min(0),
  /** Results: N objects `<id>_<i>`, a generator's values as it yields them ('streaming'), or all at its end ('dynamic'). Default 1: the task's own object. */
  num_returns: z.union([z.number().int().min(0).max(MAX_RETURNS), z.enum(['streaming', 'dynamic'])]).optional(),
  /** An actor's calls that may run at once (threads, or an async actor's coroutines). */
  max_concurrency: z.number().int().min(1).max(100_000).optional(),
  /** Times an actor is restarted when its process dies (-1: always). */
  max_restarts: z.number().int().min(-1).max(100_000).optional(),
  placement: placementSchema.optional(),
}).refine((s) => s.num_returns === undefined || s.num_returns === 1 || s.id.length <= MAX_RETURNING_ID, { message: `a task with several returns has an id of at most ${MAX_RETURNING_ID} characters`, path: ['id'] });
export type SubmitSpec = z.infer<typeof submitSpecSchema>;

export const errorInfoSchema = z.object({
  type: z.string().max(256),
  message: z.string().max(100_000),
  traceback: z.string().max(200_000),
  /** Where it happened, for the message a `get` raises. */
  task: z.string().max(512),
});
export type ErrorInfo = z.infer<typeof errorInfoSchema>;

// ---- job socket: client -> agent --------------------------------------------------------------

export const clientMessageSchema = z.discriminatedUnion('t', [
  z.object({
    t: z.literal('hello'),
    token: z.string().max(256),
    role: z.enum(['driver', 'worker']),
    lang: langSchema,
    worker_id: workerIdSchema.optional(),
  }),
  z.object({ t: z.literal('submit'), tasks: z.array(submitSpecSchema).max(100_000) }),
  /**
   * `file`: the value's `len` bytes are not in the frame but in the file the process wrote itself,
   * named by the id, in its job's shared-memory store (RAYSUB_OBJECT_DIR, where the agent offers one).
   */
  z.object({ t: z.literal('put'), id: objectIdSchema, len: z.number().int().min(0), file: z.literal(true).optional() }),
  /** Ask for objects: the agent answers with `resolved` for each once it is ready (and local, for large ones). */
  z.object({ t: z.literal('get'), refs: z.array(refSchema).max(100_000) }),
  z.object({
    t: z.literal('result'),
    task_id: objectIdSchema,
    ok: z.boolean(),
    len: z.number().int().min(0),
    error: errorInfoSchema.optional(),
    /** The worker's process is unusable after this (an actor whose constructor failed). */
    fatal: z.boolean().optional(),
    /** A task with `num_returns` N: the bytes of each of its N values, in order, in the payload. */
    returns: z.array(z.number().int().min(0)).max(MAX_RETURNS).optional(),
    /** false: not retried whatever its retry options (it was cancelled, or its exception is not one to retry). */
    retryable: z.boolean().optional(),
    /** As for `put`: the value is in the file the worker wrote at the task's id (one value, ok). */
    file: z.literal(true).optional(),
  }),
  /** A generator task yielded its `index`-th value (or raised: the error is that item). */
  z.object({ t: z.literal('yield'), task_id: objectIdSchema, index: z.number().int().min(0).max(MAX_YIELDS - 1), ok: z.boolean(), len: z.number().int().min(0), error: errorInfoSchema.optional() }),
  z.object({ t: z.literal('blocked') }),
  z.object({ t: z.literal('unblocked') }),
  /** `restart`: the actor is restarted if it has restarts left (`ray.kill(no_restart=False)`). */
  z.object({ t: z.literal('kill_actor'), actor: refSchema, restart: z.boolean().optional() }),
  /** A question about the cluster or the job's shared state (answered by a `reply`); `len` payload bytes go with it. */
  z.object({ t: z.literal('request'), req_id: z.number().int().min(0), call: clientCallSchema, len: z.number().int().min(0).max(64 * 1024) }),
  /** This process holds no reference to these objects or actors any more (it made them, and none escaped it). */
  z.object({ t: z.literal('release'), objects: z.array(objectIdSchema).max(100_000), actors: z.array(objectIdSchema).max(100_000) }),
  /** Cancel a task: never run it if it has not started; stop it if it runs (`force`: kill its worker). */
  z.object({ t: z.literal('cancel'), ref: refSchema, force: z.boolean(), recursive: z.boolean() }),
]);
export type ClientMessage = z.infer<typeof clientMessageSchema>;

// ---- job socket: agent -> client (parsed where they enter the Node library) ---------------------

/** Why the agent refused a connection (it sends an `error` frame, then closes). */
export const socketErrorCodeSchema = z.enum([
  /** Not a frame: a zero-length header, or one that is not JSON. */
  'INVALID_FRAME',
  /** A frame whose header is not a message of this protocol (unknown type, bad id, missing field). */
  'INVALID_MESSAGE',
  /** No hello, a wrong token, or a worker id the agent is not waiting for. */
  'UNAUTHORIZED',
  /** A task or object id already in use in this job. */
  'DUPLICATE_ID',
  /** The job went over one of its limits (docs/tasks.md, "Limits"): it is being failed. */
  'LIMIT_EXCEEDED',
  /** The agent could not take the frame (its disk is full, say). */
  'INTERNAL',
]);
export type SocketErrorCode = z.infer<typeof socketErrorCodeSchema>;

export const resolvedItemSchema = z.object({
  id: objectIdSchema,
  state: z.enum(['value', 'path', 'error', 'remote']),
  /** Bytes of this item in the frame's payload (value, error), or the object's size (path, remote). */
  len: z.number().int().min(0),
  path: z.string().optional(),
  error: errorInfoSchema.optional(),
});
export type ResolvedItem = z.infer<typeof resolvedItemSchema>;

export const executeDepSchema = z.object({
  id: objectIdSchema,
  state: z.enum(['value', 'path']),
  len: z.number().int().min(0),
  path: z.string().optional(),
});
export type ExecuteDep = z.infer<typeof executeDepSchema>;

export const executeTaskSchema = z.object({
  id: objectIdSchema,
  kind: taskKindSchema,
  fn: fnRefSchema,
  name: z.string(),
  actor_id: objectIdSchema.optional(),
  method: z.string().optional(),
  /** The arguments' bytes at the start of the payload... */
  args_len: z.number().int().min(0),
  /** ...or, for large arguments, in this file (args_len is then 0). */
  args_path: z.string().optional(),
  deps: z.array(executeDepSchema),
  gpu_ids: z.array(z.number().int().min(0)),
  attempt: z.number().int().min(1),
});
export type ExecuteTask = z.infer<typeof executeTaskSchema>;

export const agentMessageSchema = z.discriminatedUnion('t', [
  z.object({ t: z.literal('welcome'), node_id: ownerSchema, job_id: jobIdSchema }),
  z.object({ t: z.literal('error'), code: socketErrorCodeSchema, message: z.string() }),
  /** Objects a client asked for or submitted, as they became ready; value and error bytes follow in the payload, in order. */
  z.object({ t: z.literal('resolved'), items: z.array(resolvedItemSchema) }),
  /** To a worker: run this task (its arguments, then its inline dependencies, in the payload). */
  z.object({ t: z.literal('execute'), task: executeTaskSchema }),
  /** The answer to a `request` (a named actor's handle follows in the payload). */
  z.object({ t: z.literal('reply'), req_id: z.number().int().min(0), ok: z.boolean(), value: z.unknown().optional(), error: replyErrorSchema.optional() }),
  /** To a worker: stop this task it runs (it was cancelled). */
  z.object({ t: z.literal('cancel'), task_id: objectIdSchema, force: z.boolean() }),
]);
export type AgentMessage = z.infer<typeof agentMessageSchema>;

// ---- in-job relay: agent <-> head ------------------------------------------------------------

/** A value as it travels between agents: inline bytes, or where the bytes are. */
/** Inline bytes between agents, base64: values of at most 100 KiB (larger ones travel by location). */
const inlineDataSchema = z.string().max(140_000);

export const relayValueSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('inline'), data: inlineDataSchema }),
  z.object({ kind: z.literal('file'), node: nodeIdSchema, size: z.number().int().min(0) }),
  z.object({ kind: z.literal('error'), error: errorInfoSchema, data: inlineDataSchema }),
]);
export type RelayValue = z.infer<typeof relayValueSchema>;


/** A task travelling to the head and on to the node that runs it. */
export const relayTaskSchema = z.object({
  job_id: jobIdSchema,
  owner_node: nodeIdSchema,
  lang: langSchema,
  spec: submitSpecSchema,
  /** The arguments: inline (base64) when small, else where they are (a file in the submitter's store). */
  args: z.union([
    inlineDataSchema,
    z.object({
      id: objectIdSchema,
      node: nodeIdSchema,
      size: z.number().int().min(0),
    }),
  ]),
  deps: z.array(z.object({ id: objectIdSchema, value: relayValueSchema })).max(10_000),
  attempt: z.number().int().min(1),
});
export type RelayTask = z.infer<typeof relayTaskSchema>;

export const relayResultSchema = z.object({ job_id: jobIdSchema, id: objectIdSchema, owner_node: nodeIdSchema, value: relayValueSchema });

/** One in-job task of one job (ids are chosen by jobs, so they are unique only within a job). */
export const jobTaskIdSchema = z.object({ job_id: jobIdSchema, id: objectIdSchema });
export type JobTaskId = z.infer<typeof jobTaskIdSchema>;
export type RelayResult = z.infer<typeof relayResultSchema>;

export const usageSchema = z.object({
  cpus: z.number(),
  memory: z.number(),
  gpus: z.array(z.number()),
  custom: z.record(z.string(), z.number()),
  /** Task slots (each in-job task or actor holds one). */
  tasks: z.number().int().optional(),
});
export type Usage = z.infer<typeof usageSchema>;

export const injobCountsSchema = z.object({
  pending: z.number().int().min(0),
  running: z.number().int().min(0),
  finished: z.number().int().min(0),
  failed: z.number().int().min(0),
  actors_alive: z.number().int().min(0),
  actors_dead: z.number().int().min(0),
});
export type InjobCounts = z.infer<typeof injobCountsSchema>;

/** Agent -> head, inside a report. Every list is idempotent by id, so a resent report is harmless. */
export const injobReportSchema = z.object({
  /** The agent's object server (other agents fetch large objects there). */
  address: z.string().max(512).nullable(),
  /** Resources held on this node by in-job work (net of tasks blocked in `get`). */
  usage: usageSchema,
  /** Jobs with in-job state on this node; the head answers which of them have ended. */
  jobs: z.array(jobIdSchema).max(100_000),
  counts: z.record(jobIdSchema, injobCountsSchema),
  submit: z.array(relayTaskSchema).max(100_000),
  results: z.array(relayResultSchema).max(100_000),
  /** Head-placed tasks this node has taken in (its usage now covers them). */
  received: z.array(jobTaskIdSchema).max(100_000),
  /** Head-placed tasks that finished here (or failed for good). */
  done: z.array(jobTaskIdSchema).max(100_000),
  /** Actors this node started, so calls from other nodes find them. */
  actors: z.array(z.object({ job_id: jobIdSchema, actor_id: objectIdSchema })).max(100_000),
  /** `graceful`: its last handle went (it ends once the calls sent before have run); `restart`: it is restarted if it may be. */
  kill_actors: z.array(z.object({ job_id: jobIdSchema, actor_id: objectIdSchema, owner: ownerSchema, graceful: z.boolean().optional(), restart: z.boolean().optional() })).max(10_000),
  /** Actors that died here for good: their names are free again. */
  actors_gone: z.array(z.object({ job_id: jobIdSchema, actor_id: objectIdSchema })).max(100_000).default([]),
  /** Questions of the job's processes only the head answers (its answer carries the replies). */
  requests: z.array(injobRequestSchema).max(10_000).default([]),
  /** Cancellations of tasks this node handed to the head. */
  cancels: z.array(z.object({ job_id: jobIdSchema, id: objectIdSchema, force: z.boolean() })).max(100_000).default([]),
  /** Placement group bundles this node now holds on its own ledger (its usage covers them). */
  bundles: z.array(z.object({ job_id: jobIdSchema, group: objectIdSchema, index: z.number().int().min(0).max(MAX_BUNDLES - 1) })).max(100_000).default([]),
  /** Worker output for a job whose tasks run elsewhere: the head passes it to a node running one of its tasks. */
  logs: z.array(z.object({ job_id: jobIdSchema, data: inlineDataSchema })).max(10_000),
  /** Jobs whose in-job traffic went over a limit here: the head fails them (INJOB_LIMIT_EXCEEDED). */
  failed: z.array(z.object({ job_id: jobIdSchema, message: z.string().max(4000) })).max(10_000),
});
export type InjobReport = z.infer<typeof injobReportSchema>;

export const injobDeliverySchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('task'), task: relayTaskSchema, job: jobContextSchema }),
  z.object({ type: z.literal('result'), result: relayResultSchema }),
  z.object({ type: z.literal('kill_actor'), job_id: jobIdSchema, actor_id: objectIdSchema, graceful: z.boolean().optional(), restart: z.boolean().optional() }),
  z.object({ type: z.literal('cancel'), job_id: jobIdSchema, id: objectIdSchema, force: z.boolean() }),
  /** Reserve (or give back) a placement group's bundle on this node. */
  z.object({
    type: z.literal('bundle'),
    job_id: jobIdSchema,
    group: objectIdSchema,
    index: z.number().int().min(0).max(MAX_BUNDLES - 1),
    resources: injobResourcesSchema,
    gpu_ids: z.array(z.number().int().min(0)),
    reserve: z.boolean(),
    job: jobContextSchema,
  }),
  z.object({ type: z.literal('log'), job_id: jobIdSchema, data: inlineDataSchema }),
]);
export type InjobDelivery = z.infer<typeof injobDeliverySchema>;

/** Head -> agent, in report answers (and poll answers for deliveries). */
export const injobAnswerSchema = z.object({
  /** Which of the reported jobs are over: their workers, actors and objects go. */
  ended: z.array(z.string()),
  /** Object servers of the live nodes. */
  nodes: z.record(z.string(), z.string()),
  /** Free resources per live node, as the head sees them (for deciding whether to spill). */
  free: z.record(z.string(), usageSchema),
  /** The live nodes (what `ray.nodes()` and `cluster_resources()` tell a job). */
  cluster: z.array(z.object({ node_id: nodeIdSchema, name: z.string().max(256), address: z.string().max(512), total: usageSchema })).max(10_000).optional(),
  /** The head's answers to the report's requests. */
  replies: z.array(injobReplySchema).max(10_000).optional(),
});
export type InjobAnswer = z.infer<typeof injobAnswerSchema>;

export const injobPollSchema = z.object({
  deliveries: z.array(z.object({ seq: z.number().int(), msg: injobDeliverySchema })),
  ended: z.array(z.string()),
});
export type InjobPoll = z.infer<typeof injobPollSchema>;

/** Agent <-> agent: where an object stands at its owner. */
export const refsRequestSchema = z.object({ job_id: jobIdSchema, ids: z.array(objectIdSchema).max(10_000), wait_ms: z.number().int().min(0).max(60_000) });
export const refsResponseSchema = z.object({
  items: z.array(z.object({ id: objectIdSchema, value: relayValueSchema.nullable(), known: z.boolean() })).max(10_000),
});
export type RefsResponse = z.infer<typeof refsResponseSchema>;
/** Agent -> agent: the owner of these objects (made there, held here) dropped its last reference to them. */
export const freeRequestSchema = z.object({ job_id: jobIdSchema, ids: z.array(objectIdSchema).max(10_000) });
