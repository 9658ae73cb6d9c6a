import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { RaysubError } from '../../shared/errors.js';
import { parseWith, pollRequestSchema, registerRequestSchema, reportRequestSchema, type RegisterResponse } from '../../shared/protocol/index.js';
import { ADMIN_CREDENTIAL, type Principal } from '../auth.js';
import type { HeadContext } from '../context.js';

const nodeParams = z.object({ nodeId: z.string().min(1).max(100) });
/** Only agents call these (agent tokens, the embedded agent, or the admin token on a single-token cluster). */
const config = { access: 'agent' as const };

type AgentPrincipal = Extract<Principal, { kind: 'agent' }>;

function agentOf(req: FastifyRequest): AgentPrincipal {
  const p = req.principal;
  if (p?.kind !== 'agent') throw new RaysubError('FORBIDDEN', 'only agents call the agent endpoints');
  return p;
}

const SINGLE_TOKEN_WARNING =
  'this agent uses the admin token, as single-token clusters did: create an agent token (raysub token create --kind agent) and start agents with --token-file; the admin token stops working for agents once one exists';

/** The agents' own endpoints: register, report (events, logs, heartbeat), and long-poll. Each acts only for nodes its credential registered. */
export function agentRoutes(ctx: HeadContext): FastifyPluginAsync {
  const nodeOf = (req: FastifyRequest): string => {
    const { nodeId } = parseWith(nodeParams, req.params);
    ctx.identity.check(nodeId, agentOf(req));
    return nodeId;
  };
  return async (app) => {
    app.post('/api/agents/register', { config }, async (req): Promise<RegisterResponse> => {
      const agent = agentOf(req);
      const body = parseWith(registerRequestSchema, req.body);
      const replacing = ctx.identity.admit(body, agent, ctx.engine.view.nodeList(), Date.now());
      const res = ctx.hub.register(body, agent.credential, replacing);
      if (agent.credential === ADMIN_CREDENTIAL) ctx.log.warn({ node: body.node_name }, SINGLE_TOKEN_WARNING);
      return { ...res, peer_token: ctx.peerToken, ...(agent.credential === ADMIN_CREDENTIAL ? { warning: SINGLE_TOKEN_WARNING } : {}) };
    });

    app.post('/api/agents/:nodeId/report', { bodyLimit: 64 * 1024 * 1024, config }, async (req) => {
      const nodeId = nodeOf(req);
      return ctx.hub.report(nodeId, parseWith(reportRequestSchema, req.body));
    });

    app.post('/api/agents/:nodeId/drain', { config }, async (req) => {
      ctx.hub.drain(nodeOf(req));
      return { draining: true };
    });

    app.post('/api/agents/:nodeId/leave', { config }, async (req) => {
      ctx.hub.leave(nodeOf(req));
      return { left: true };
    });

    app.post('/api/agents/:nodeId/poll', { config }, async (req, reply) => {
      const nodeId = nodeOf(req);
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
