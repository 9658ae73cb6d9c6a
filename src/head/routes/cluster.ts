import type { FastifyPluginAsync } from 'fastify';
import { z } from 'zod';
import { COMPATIBLE_RAY_VERSION, RAYSUB_VERSION } from '../../shared/config.js';
import { parseWith, type ClusterHistoryResponse, type JobCountsResponse } from '../../shared/protocol/index.js';
import type { HeadContext } from '../context.js';
import { jobCounts } from '../dashboard/changes.js';
import { labelSchema } from './labels.js';

const summaryQuery = z.object({ label: labelSchema.optional() });

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

    // Jobs by status, read without scanning them (with a label: among the newest 10,000 so labelled).
    app.get('/api/cluster/summary', async (req): Promise<JobCountsResponse> => {
      const q = parseWith(summaryQuery, req.query);
      const all = jobCounts(ctx.dashboard.store);
      if (!q.label) return all;
      const { counts, capped } = ctx.dashboard.store.jobs.labelCounts(q.label);
      return { counts, total: Object.values(counts).reduce((a, b) => a + b, 0), capped, max_seq: all.max_seq };
    });

    app.get('/api/cluster/history', async (): Promise<ClusterHistoryResponse> => ({
      interval_ms: ctx.dashboard.history.opts.intervalMs,
      // The recorded samples, then the cluster as it is now: the charts' last point is never stale.
      samples: [...ctx.dashboard.history.list(), ctx.dashboard.history.measure()],
    }));

    // Server-sent events: the job counts again whenever any job changes (the dashboard's live table).
    app.get('/api/cluster/events', async (_req, reply) => {
      ctx.dashboard.changes.admit();
      reply.hijack();
      ctx.dashboard.changes.listen(reply.raw);
    });

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
