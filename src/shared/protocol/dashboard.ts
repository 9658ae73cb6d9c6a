import { z } from 'zod';
import { jobStatusSchema } from './common.js';

/** `GET /api/cluster/summary`: jobs by status, read without scanning the jobs. */
export const jobCountsResponseSchema = z.object({
  counts: z.partialRecord(jobStatusSchema, z.number()),
  total: z.number(),
  /** With a label filter: only the newest 10,000 labelled jobs were counted. */
  capped: z.boolean(),
  /** The newest job's sequence number: it and the counts change whenever any job does. */
  max_seq: z.number(),
});
export type JobCountsResponse = z.infer<typeof jobCountsResponseSchema>;

/** One point of `GET /api/cluster/history` (the last hour, oldest first). */
export const clusterSampleSchema = z.object({
  t: z.number(),
  running: z.number(),
  pending: z.number(),
  /** Jobs finished since the head started (throughput is its slope). */
  finished: z.number(),
  cpus: z.number(),
  cpus_used: z.number(),
  gpus: z.number(),
  gpus_used: z.number(),
  memory: z.number(),
  memory_used: z.number(),
});
export type ClusterSample = z.infer<typeof clusterSampleSchema>;
export const clusterHistorySchema = z.object({ interval_ms: z.number(), samples: z.array(clusterSampleSchema) });
export type ClusterHistoryResponse = z.infer<typeof clusterHistorySchema>;
