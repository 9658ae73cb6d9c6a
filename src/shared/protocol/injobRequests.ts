import { z } from 'zod';
import { injobResourcesSchema as bundleSchema, jobIdSchema, objectIdSchema } from './injobBase.js';

/**
 * Questions a job's processes ask about the cluster and their job's shared state: named actors,
 * placement groups, the cluster's resources, the job's CPU limit. A process asks its agent on the
 * job socket (`request`, answered by a `reply` with the same `req_id`); what only the head knows
 * (names and groups are job-wide) the agent asks the head inside its next report, whose answer
 * carries the head's replies.
 */

const nameSchema = z.string().min(1).max(256);
const namespaceSchema = z.string().min(1).max(256);
/** A pickled actor handle, base64 (the head checks its size). */
const handleSchema = z.string().max(96 * 1024);

export const bundleStrategySchema = z.enum(['PACK', 'SPREAD', 'STRICT_PACK', 'STRICT_SPREAD']);
/** A placement group's bundles at most (Ray sets no limit; each is a reservation the head keeps). */
export const MAX_BUNDLES = 1000;

const nameActor = { op: z.literal('name_actor'), name: nameSchema, namespace: namespaceSchema, get_if_exists: z.boolean(), detached: z.boolean(), actor_id: objectIdSchema };
const getActor = z.object({ op: z.literal('get_actor'), name: nameSchema, namespace: namespaceSchema });
const listActors = z.object({ op: z.literal('list_actors') });
const pgCreate = z.object({ op: z.literal('pg_create'), id: objectIdSchema, bundles: z.array(bundleSchema).min(1).max(MAX_BUNDLES), strategy: bundleStrategySchema, name: z.string().max(256) });
const pgRemove = z.object({ op: z.literal('pg_remove'), id: objectIdSchema });
const pgGet = z.object({ op: z.literal('pg_get'), name: nameSchema });
const pgTable = z.object({ op: z.literal('pg_table'), id: objectIdSchema.nullable() });

/** What the head answers (names and placement groups are job-wide). */
export const headCallSchema = z.discriminatedUnion('op', [z.object({ ...nameActor, handle: handleSchema }), getActor, listActors, pgCreate, pgRemove, pgGet, pgTable]);
export type HeadCall = z.infer<typeof headCallSchema>;

/** What a job's process may ask its agent: the head's questions, and two the agent answers itself. */
export const clientCallSchema = z.discriminatedUnion('op', [
  // A process names an actor with its handle's bytes in the frame's payload.
  z.object(nameActor),
  getActor,
  listActors,
  pgCreate,
  pgRemove,
  pgGet,
  pgTable,
  /** The cluster's nodes and resources, as the head last described them. */
  z.object({ op: z.literal('cluster') }),
  /** `ray.init(num_cpus=n)`: the job's tasks hold at most n CPUs at once (on the driver's node). */
  z.object({ op: z.literal('limit'), cpus: z.number().min(0).max(100_000) }),
]);
export type ClientCall = z.infer<typeof clientCallSchema>;

/** Agent -> head, in a report: a question of one of a job's processes (`req` is the agent's own number). */
export const injobRequestSchema = z.object({ job_id: jobIdSchema, req: z.number().int().min(0), call: headCallSchema });
export type InjobRequest = z.infer<typeof injobRequestSchema>;

/** Why a request failed: the exception the library raises (ValueError, ActorAlreadyExistsError, RaySystemError). */
export const replyErrorSchema = z.object({ type: z.enum(['ValueError', 'ActorAlreadyExistsError', 'RaySystemError']), message: z.string().max(4000) });
export type ReplyError = z.infer<typeof replyErrorSchema>;

/** Head -> agent, in a report's answer: the answer to a request (`data`: a handle's bytes, base64). */
export const injobReplySchema = z.object({
  req: z.number().int().min(0),
  ok: z.boolean(),
  error: replyErrorSchema.optional(),
  value: z.unknown().optional(),
  data: z.string().max(96 * 1024).optional(),
});
export type InjobReply = z.infer<typeof injobReplySchema>;
