import { z } from 'zod';
import { nodeConditionSchema, nodeTotalsSchema, sandboxInfoSchema } from './agents.js';

export const nodeStateSchema = z.enum(['ALIVE', 'LOST', 'DRAINING', 'GONE']);
export type NodeState = z.infer<typeof nodeStateSchema>;

export const nodeInfoSchema = z.object({
  node_id: z.string(),
  node_name: z.string(),
  hostname: z.string(),
  state: nodeStateSchema,
  registered_at: z.number(),
  last_seen_at: z.number(),
  totals: nodeTotalsSchema,
  free: nodeTotalsSchema,
  gpu_free: z.array(z.number()),
  sandbox: sandboxInfoSchema,
  running_tasks: z.number(),
  usage: z.record(z.string(), z.unknown()),
  /** An operator cordoned the node (`raysub node cordon|drain`): it takes no new work. */
  cordoned: z.boolean().optional(),
  /** Its agent reports it unhealthy (its work dir is not writable): it takes no new work until that passes. */
  unhealthy: nodeConditionSchema.optional(),
});
export type NodeInfo = z.infer<typeof nodeInfoSchema>;

/** `POST /api/nodes/{name}/cordon|uncordon`, `DELETE /api/nodes/{name}`: what changed. */
export const nodeControlResponseSchema = z.object({
  node_name: z.string(),
  cordoned: z.boolean(),
  /** Registrations of the name that are not alive (LOST) and were forgotten (`DELETE`). */
  forgotten: z.number().optional(),
  /** Tasks running on the node now. */
  running_tasks: z.number(),
});
export type NodeControlResponse = z.infer<typeof nodeControlResponseSchema>;

export const nodeListSchema = z.object({ nodes: z.array(nodeInfoSchema) });
