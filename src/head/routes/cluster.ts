import type { FastifyPluginAsync } from 'fastify';
import { COMPATIBLE_RAY_VERSION, RAYSUB_VERSION } from '../../shared/config.js';
import type { HeadContext } from '../context.js';

/** Version (Ray's handshake), nodes, Prometheus metrics and Ray's idle-detection endpoint. */
export function clusterRoutes(ctx: HeadContext): FastifyPluginAsync {
  return async (app) => {
    // Ray's four keys, and raysub's own under `raysub`.
    app.get('/api/version', async () => ({
      version: '4',
      ray_version: COMPATIBLE_RAY_VERSION,
      ray_commit: 'raysub',
      session_name: ctx.sessionName,
      raysub: { version: RAYSUB_VERSION },
    }));

    app.get('/api/nodes', async () => ({ nodes: ctx.hub.nodeInfos() }));

    app.get('/metrics', async (_req, reply) => {
      void reply.type(ctx.metrics.contentType);
      return ctx.metrics.render();
    });

    // As Ray words it: the number of live drivers (here: jobs pending or running) as the reason
    // when active, none when not; the last activity is when a job last ended (seconds).
    app.get('/api/component_activities', async () => {
      const active = ctx.engine.view.jobCount;
      const lastEnd = ctx.jobs.lastEndTime();
      return {
        driver: {
          is_active: active > 0 ? 'ACTIVE' : 'INACTIVE',
          reason: active > 0 ? `Number of active drivers: ${active}` : null,
          timestamp: Date.now() / 1000,
          last_activity_at: lastEnd === null ? null : lastEnd / 1000,
        },
      };
    });
  };
}
