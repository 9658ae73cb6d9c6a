import { z } from 'zod';
import { resourceMapSchema, submissionIdSchema } from './common.js';

/** What the in-job wire and the in-job relay share: ids, and a task's resource request. */

/**
 * Ids a job chooses itself (tasks, objects, actors) name files in the agent's object store and keys
 * of the agent's and the head's tables: a fixed alphabet and length, checked where they enter.
 * The libraries make them as 12 random hex digits and a counter.
 */
export const OBJECT_ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
export const objectIdSchema = z.string().regex(OBJECT_ID_PATTERN, 'an object id is 1 to 64 characters of A-Z, a-z, 0-9, "_" and "-"');
/** A node id as the head makes them (`node_<hex>`); empty where the owner is not known yet. */
export const nodeIdSchema = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'a node id is 1 to 64 characters of A-Z, a-z, 0-9, "_" and "-"');
export const ownerSchema = z.union([z.literal(''), nodeIdSchema]);
/** A job id: the job's submission id. */
export const jobIdSchema = submissionIdSchema;
/** A warm worker's id, as its agent gave it (`w<n>`). */
export const workerIdSchema = z.string().regex(/^w[0-9]{1,12}$/, 'a worker id is "w" and a number');

/** A task's (or a placement group bundle's) resource request. */
export const injobResourcesSchema = z.object({
  cpus: z.number().min(0).max(100_000),
  gpus: z.number().min(0).max(1024),
  memory: z.number().int().min(0),
  custom: resourceMapSchema,
});
