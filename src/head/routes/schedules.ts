import type { FastifyPluginAsync } from 'fastify';
import { z } from 'zod';
import { parseWith, scheduleNameSchema } from '../../shared/protocol/index.js';
import type { HeadContext } from '../context.js';

const nameParams = z.object({ name: scheduleNameSchema });
const runsQuery = z.object({ limit: z.coerce.number().int().min(1).max(1000).optional() });

/** raysub's schedules: cron-driven job templates held and fired by the head. */
export function scheduleRoutes(ctx: HeadContext): FastifyPluginAsync {
  return async (app) => {
    app.post('/api/schedules', async (req, reply) => {
      const { schedule, created } = ctx.schedules.save(req.body, { upsert: false });
      void reply.status(created ? 201 : 200);
      return schedule;
    });

    // Create or replace the definition of NAME (history and last run are kept).
    app.put('/api/schedules/:name', async (req, reply) => {
      const { name } = parseWith(nameParams, req.params, 'SCHEDULE_NOT_FOUND');
      const { schedule, created } = ctx.schedules.save(req.body, { upsert: true, name });
      void reply.status(created ? 201 : 200);
      return schedule;
    });

    app.get('/api/schedules', async () => ({ schedules: ctx.schedules.list() }));

    app.get('/api/schedules/:name', async (req) => {
      const { name } = parseWith(nameParams, req.params, 'SCHEDULE_NOT_FOUND');
      return ctx.schedules.get(name);
    });

    app.get('/api/schedules/:name/runs', async (req) => {
      const { name } = parseWith(nameParams, req.params, 'SCHEDULE_NOT_FOUND');
      const q = parseWith(runsQuery, req.query);
      return { runs: ctx.schedules.runs(name, q.limit ?? 50) };
    });

    app.post('/api/schedules/:name/pause', async (req) => {
      const { name } = parseWith(nameParams, req.params, 'SCHEDULE_NOT_FOUND');
      return ctx.schedules.pause(name);
    });

    app.post('/api/schedules/:name/resume', async (req) => {
      const { name } = parseWith(nameParams, req.params, 'SCHEDULE_NOT_FOUND');
      return ctx.schedules.resume(name);
    });

    app.post('/api/schedules/:name/trigger', async (req) => {
      const { name } = parseWith(nameParams, req.params, 'SCHEDULE_NOT_FOUND');
      return ctx.schedules.trigger(name, req.body);
    });

    app.delete('/api/schedules/:name', async (req) => {
      const { name } = parseWith(nameParams, req.params, 'SCHEDULE_NOT_FOUND');
      ctx.schedules.delete(name);
      return { deleted: true };
    });
  };
}
