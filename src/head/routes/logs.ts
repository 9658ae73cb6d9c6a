import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { RaysubError } from '../../shared/errors.js';
import { logStreamRequestSchema, parseWith, type LogStreamRequest } from '../../shared/protocol/index.js';
import { serveLogStream, serveRayLogs, tailOverWebSocket } from '../logResponses.js';
import type { HeadContext } from '../context.js';
import { serveLogDownload } from '../dashboard/logDownload.js';

const idParams = z.object({ id: z.string().min(1).max(200) });
/** `view=raysub`: raysub's own lines too, and not Ray's first line (raysub's SDK reads this). */
const logsQuery = z.object({ view: z.enum(['ray', 'raysub']).optional() });
const streamQuery = z.object({
  follow: z.enum(['true', 'false', '1', '0']).optional(),
  /** "task:offset,task:offset" (tasks not named start at 0). */
  from: z.string().max(8000).optional(),
  task: z.coerce.number().int().min(0).max(100_000).optional(),
  tail: z.coerce.number().int().min(0).max(1_000_000_000).optional(),
  /** ms since the epoch */
  since: z.coerce.number().int().min(0).optional(),
  timestamps: z.enum(['true', 'false', '1', '0']).optional(),
});

function fromQuery(value: string | undefined): Record<string, number> {
  const out: Record<string, number> = {};
  for (const pair of (value ?? '').split(',').filter(Boolean)) {
    const m = /^(\d{1,5}):(\d{1,15})$/.exec(pair);
    if (!m) throw new RaysubError('INVALID_REQUEST', `from: expected "task:offset" pairs separated by commas, got "${pair.slice(0, 40)}"`);
    out[m[1] as string] = Number(m[2]);
  }
  return out;
}

/**
 * Log endpoints: Ray's whole-log GET and WebSocket tail, and raysub's NDJSON stream (GET; or POST
 * with a JSON body, for resuming an array job whose offsets would not fit in a URL).
 */
export function logRoutes(ctx: HeadContext): FastifyPluginAsync {
  return async (app) => {
    app.get('/api/jobs/:id/logs', async (req, reply) => {
      const { id } = parseWith(idParams, req.params);
      const { view } = parseWith(logsQuery, req.query);
      ctx.jobs.row(id);
      reply.hijack();
      await serveRayLogs(ctx, id, reply.raw, req.log, view);
    });

    // The whole log as a text file (the dashboard's Download).
    app.get('/api/jobs/:id/logs/download', async (req, reply) => {
      const { id } = parseWith(idParams, req.params);
      ctx.jobs.row(id);
      reply.hijack();
      await serveLogDownload(ctx, id, reply.raw, req.log);
    });

    // An unknown job is answered 404 before the upgrade, as Ray does (its client then raises).
    const knownJob = async (req: FastifyRequest): Promise<void> => {
      ctx.jobs.row(parseWith(idParams, req.params).id);
    };
    app.get('/api/jobs/:id/logs/tail', { websocket: true, preValidation: knownJob }, (socket, req) => {
      const parsed = idParams.safeParse(req.params);
      if (!parsed.success) {
        socket.close(1008, 'invalid job id');
        return;
      }
      tailOverWebSocket(ctx, socket, parsed.data.id, req.log);
    });

    const stream = async (id: string, body: LogStreamRequest, reply: FastifyReply): Promise<void> => {
      const row = ctx.jobs.row(id);
      if (body.task !== undefined && body.task >= row.parallel) {
        throw new RaysubError('INVALID_REQUEST', `task ${body.task}: job ${id} has ${row.parallel} task${row.parallel === 1 ? '' : 's'} (0-${row.parallel - 1})`);
      }
      reply.hijack();
      await serveLogStream(ctx, id, body, reply.raw, reply.log);
    };

    app.get('/api/jobs/:id/logs/stream', async (req, reply) => {
      const { id } = parseWith(idParams, req.params);
      const q = parseWith(streamQuery, req.query);
      const yes = (v: string | undefined): boolean => v === 'true' || v === '1';
      await stream(id, { follow: yes(q.follow), from: fromQuery(q.from), task: q.task, tail: q.tail, since: q.since, timestamps: yes(q.timestamps) }, reply);
    });

    app.post('/api/jobs/:id/logs/stream', async (req, reply) => {
      const { id } = parseWith(idParams, req.params);
      await stream(id, parseWith(logStreamRequestSchema, req.body ?? {}), reply);
    });
  };
}
