import type { FastifyPluginAsync } from 'fastify';
import { COMPATIBLE_RAY_VERSION, RAYSUB_VERSION } from '../../shared/config.js';
import type { HeadContext } from '../context.js';

/** Version (Ray's handshake), nodes, Prometheus metrics and Ray's idle-detection endpoint. */
export function clusterRoutes(ctx: HeadContext): FastifyPluginAsync {
  return async (app) => {
    app.get('/api/version', async () => ({
      version: '4',
      ray_version: COMPATIBLE_RAY_VERSION,
      ray_commit: 'raysub',
      session_name: ctx.sessionName,
      raysub_version: RAYSUB_VERSION,
    }));

    app.get('/api/nodes', async () => ({ nodes: ctx.hub.nodeInfos() }));

    app.get('/metrics', async (_req, reply) => {
      void reply.type(ctx.metrics.contentType);
      return ctx.metrics.render();
    });

    app.get('/api/component_activities', async () => {
      const running = ctx.engine.view.jobCount > 0;
      const now = Date.now() / 1000;
      return {
        driver: {
          is_active: running ? 'ACTIVE' : 'INACTIVE',
          reason: running ? 'jobs are pending or running' : 'no pending or running jobs',
          timestamp: now,
          last_activity_at: now,
        },
      };
    });
  };
}
