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

/** `POST /api/session`: the login form's token. */
export const sessionLoginRequestSchema = z.strictObject({ token: z.string().min(1).max(4096) });

/** `GET /api/session`: who the page is logged in as, and the token its state-changing requests carry. */
export const sessionInfoSchema = z.object({
  kind: z.enum(['admin', 'user']),
  name: z.string(),
  /** Null for a request made with a token header (no session, nothing to protect). */
  csrf_token: z.string().nullable(),
  expires_at: z.number().nullable(),
});
export type SessionInfoResponse = z.infer<typeof sessionInfoSchema>;

/** `POST /api/session/login-codes`: a one-time code that opens a session at `/login?code=...`. */
export const loginCodeResponseSchema = z.object({ code: z.string(), path: z.string(), expires_at: z.number() });
export type LoginCodeResponse = z.infer<typeof loginCodeResponseSchema>;
