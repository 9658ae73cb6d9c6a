import { z } from 'zod';
import { nodeTotalsSchema, sandboxInfoSchema } from './agents.js';

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
});
export type NodeInfo = z.infer<typeof nodeInfoSchema>;

export const nodeListSchema = z.object({ nodes: z.array(nodeInfoSchema) });
