import { z } from 'zod';
import { packageNameSchema } from './packages.js';
import { sandboxRequestSchema } from './runtimeEnv.js';

/**
 * A job as every worker of it on a node needs it, the job's own tasks and its in-job workers alike:
 * an assignment carries it, and so does an in-job task placed on a node that runs nothing else of
 * the job. The head builds it in one place (src/head/jobContext.ts); the agent prepares a worker
 * from it in one place (src/agent/prepareWorker.ts). A job field a worker needs goes here.
 */
export const jobContextSchema = z.object({
  job_id: z.string(),
  /** Package name in the head's store for the working dir, or null for none. */
  working_dir_package: packageNameSchema.nullable(),
  runtime_env: z.record(z.string(), z.unknown()),
  env_vars: z.record(z.string(), z.string()),
  sandbox: sandboxRequestSchema,
  /** The memory limit of each of the job's processes in bytes (0: none; Ray's default, where a request only places). */
  memory: z.number().int().min(0),
  /** The job's metadata as submitted (the job sees it with Ray's defaults added). */
  metadata: z.record(z.string(), z.string()).nullable().optional(),
});
export type JobContext = z.infer<typeof jobContextSchema>;
