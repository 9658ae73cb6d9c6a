import type { FastifyPluginAsync } from 'fastify';
import { z } from 'zod';
import { parseWith, pollRequestSchema, registerRequestSchema, reportRequestSchema } from '../../shared/protocol/index.js';
import type { HeadContext } from '../context.js';

const nodeParams = z.object({ nodeId: z.string().min(1).max(100) });

/** The agents' own endpoints: register, report (events, logs, heartbeat), and long-poll. */
export function agentRoutes(ctx: HeadContext): FastifyPluginAsync {
  return async (app) => {
    app.post('/api/agents/register', async (req) => ctx.hub.register(parseWith(registerRequestSchema, req.body)));

    app.post('/api/agents/:nodeId/report', { bodyLimit: 64 * 1024 * 1024 }, async (req) => {
      const { nodeId } = parseWith(nodeParams, req.params);
      return ctx.hub.report(nodeId, parseWith(reportRequestSchema, req.body));
    });

    app.post('/api/agents/:nodeId/drain', async (req) => {
      const { nodeId } = parseWith(nodeParams, req.params);
      ctx.hub.drain(nodeId);
      return { draining: true };
    });

    app.post('/api/agents/:nodeId/leave', async (req) => {
      const { nodeId } = parseWith(nodeParams, req.params);
      ctx.hub.leave(nodeId);
      return { left: true };
    });

    app.post('/api/agents/:nodeId/poll', async (req, reply) => {
      const { nodeId } = parseWith(nodeParams, req.params);
      const body = parseWith(pollRequestSchema, req.body);
      const ac = new AbortController();
      // The request's own 'close' fires as soon as its body has been read (Node 16+), which would end
      // every long-poll at once; the response's 'close' before it finished means the agent went away.
      reply.raw.once('close', () => {
        if (!reply.raw.writableFinished) ac.abort();
      });
      return ctx.hub.poll(nodeId, body, ac.signal);
    });
  };
}
