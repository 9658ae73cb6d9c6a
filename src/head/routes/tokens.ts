import type { FastifyPluginAsync } from 'fastify';
import { z } from 'zod';
import { parseWith, tokenCreateRequestSchema } from '../../shared/protocol/index.js';
import type { HeadContext } from '../context.js';

const config = { access: 'admin' as const };
const params = z.object({ id: z.string().min(1).max(64) });

/** Token administration: the admin token only. */
export function tokenRoutes(ctx: HeadContext): FastifyPluginAsync {
  return async (app) => {
    app.post('/api/tokens', { config }, async (req) => {
      const body = parseWith(tokenCreateRequestSchema, req.body);
      const { info, token } = ctx.auth.create(body.kind, body.name);
      req.log.info({ id: info.id, kind: info.kind, name: info.name }, 'token created');
      return { ...info, token };
    });

    app.get('/api/tokens', { config }, async () => ({ tokens: ctx.auth.list() }));

    app.delete('/api/tokens/:id', { config }, async (req) => {
      const { id } = parseWith(params, req.params);
      const info = ctx.auth.revoke(id);
      req.log.info({ id: info.id, kind: info.kind, name: info.name }, 'token revoked');
      return info;
    });
  };
}
