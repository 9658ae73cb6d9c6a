import type { FastifyPluginAsync } from 'fastify';
import { z } from 'zod';
import { nodeNameSchema, parseWith, type NodeControlResponse } from '../../shared/protocol/index.js';
import type { HeadContext } from '../context.js';

const config = { access: 'admin' as const };
const params = z.object({ name: nodeNameSchema });

/**
 * Node control, for the operator (the admin token): cordon (no new work; what runs finishes),
 * uncordon, and forget a node that is gone. A cordon holds the name, so an agent restarted on a
 * cordoned node stays cordoned.
 */
export function nodeRoutes(ctx: HeadContext): FastifyPluginAsync {
  return async (app) => {
    const answer = (name: string, extra: Partial<NodeControlResponse> = {}): NodeControlResponse => {
      const info = ctx.hub.nodeInfos().find((n) => n.node_name === name);
      return { node_name: name, cordoned: Boolean(info?.cordoned), running_tasks: info?.running_tasks ?? 0, ...extra };
    };

    for (const [verb, on] of [['cordon', true], ['uncordon', false]] as const) {
      app.post(`/api/nodes/:name/${verb}`, { config }, async (req) => {
        const { name } = parseWith(params, req.params);
        ctx.engine.setCordon(name, on);
        req.log.info({ name }, `node ${verb}ed`);
        return answer(name);
      });
    }

    app.delete('/api/nodes/:name', { config }, async (req) => {
      const { name } = parseWith(params, req.params);
      const forgotten = ctx.engine.forgetNode(name);
      req.log.info({ name, forgotten }, 'node forgotten');
      return { node_name: name, cordoned: false, running_tasks: 0, forgotten };
    });
  };
}
