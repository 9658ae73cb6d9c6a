import type { FastifyPluginAsync } from 'fastify';
import { z } from 'zod';
import { JOB_NAME_KEY, jobStatusSchema, parseWith } from '../../shared/protocol/index.js';
import type { HeadContext } from '../context.js';
import { labelSchema } from './labels.js';

const MAX_LABEL_FILTERS = 16;

const listQuery = z.object({
  limit: z.coerce.number().int().min(1).max(10_000).optional(),
  cursor: z.string().max(200).optional(),
  status: z
    .string()
    .transform((s) => s.split(',').map((x) => x.trim().toUpperCase()))
    .pipe(z.array(jobStatusSchema))
    .optional(),
  schedule: z.string().max(200).optional(),
  /** `key` (jobs whose metadata has it) or `key=value`; repeated, every one must match. */
  label: z
    .union([labelSchema, z.array(labelSchema).max(MAX_LABEL_FILTERS)])
    .transform((l) => (Array.isArray(l) ? l : [l]))
    .optional(),
  /** A job's name: its metadata's `job_name` (`raysub job submit --name`). */
  name: z.string().min(1).max(1000).optional(),
  /** Only jobs submitted at or after this time: epoch milliseconds. */
  since: z.coerce.number().int().min(0).max(8.64e15).optional(),
});

const usageQuery = z.object({
  /** Jobs submitted at or after (epoch ms; default: all). */
  since: z.coerce.number().int().min(0).max(8.64e15).optional(),
  /** ...and before (epoch ms; default: now). */
  until: z.coerce.number().int().min(0).max(8.64e15).optional(),
  /** Group by this label's value. */
  by: z.string().min(1).max(1000).optional(),
});

const getQuery = z.object({ wait_s: z.coerce.number().min(0).max(300).optional() });
const idParams = z.object({ id: z.string().min(1).max(200) });

/** Ray's job endpoints (API v4), with raysub's paging, filters and long-poll beside them. */
export function jobRoutes(ctx: HeadContext): FastifyPluginAsync {
  return async (app) => {
    app.post('/api/jobs/', async (req) => {
      const { submissionId } = ctx.jobs.submit(req.body);
      return { job_id: submissionId, submission_id: submissionId };
    });

    app.get('/api/jobs/', async (req, reply) => {
      const q = parseWith(listQuery, req.query);
      const labels = [...(q.label ?? []), ...(q.name !== undefined ? [{ key: JOB_NAME_KEY, value: q.name }] : [])];
      const { jobs, nextCursor } = ctx.jobs.list({ limit: q.limit, cursor: q.cursor, statuses: q.status, schedule: q.schedule, labels, since: q.since });
      if (nextCursor) void reply.header('x-next-cursor', nextCursor);
      return jobs;
    });

    app.get('/api/usage', async (req) => {
      const q = parseWith(usageQuery, req.query);
      const to = q.until ?? Date.now() + 1;
      const from = q.since ?? 0;
      return { from, to, by: q.by ?? null, groups: ctx.jobs.usage({ from, to, by: q.by }) };
    });

    app.get('/api/jobs/:id', async (req, reply) => {
      const { id } = parseWith(idParams, req.params);
      const q = parseWith(getQuery, req.query);
      if (q.wait_s) {
        const ac = new AbortController();
        // The response closing before it finished means the client went away (the request's own
        // 'close' fires once its body is read, which says nothing about the client).
        reply.raw.once('close', () => {
          if (!reply.raw.writableFinished) ac.abort();
        });
        await ctx.jobs.waitTerminal(id, q.wait_s * 1000, ac.signal);
      }
      return ctx.jobs.details(id);
    });

    app.post('/api/jobs/:id/stop', async (req) => {
      const { id } = parseWith(idParams, req.params);
      return { stopped: ctx.jobs.stop(id) };
    });

    app.post('/api/jobs/:id/hold', async (req) => {
      const { id } = parseWith(idParams, req.params);
      ctx.jobs.setHeld(id, true);
      return { held: true };
    });

    app.post('/api/jobs/:id/release', async (req) => {
      const { id } = parseWith(idParams, req.params);
      ctx.jobs.setHeld(id, false);
      return { held: false };
    });

    app.delete('/api/jobs/:id', async (req) => {
      const { id } = parseWith(idParams, req.params);
      ctx.jobs.delete(id);
      return { deleted: true };
    });
  };
}
