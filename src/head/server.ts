import websocket from '@fastify/websocket';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyError, type FastifyInstance } from 'fastify';
import { RaysubError, toRaysubError } from '../shared/errors.js';
import { MAX_JSON_DEPTH, nestsDeeperThan } from '../shared/jsonDepth.js';
import type { HttpLimits } from '../shared/httpLimits.js';
import type { Access, Principal } from './auth.js';
import type { SessionRow } from './db/index.js';
import { identify } from './dashboard/requestAuth.js';
import { createHeadServer, type ServerTls } from './httpServer.js';
import type { HeadContext } from './context.js';
import { agentRoutes } from './routes/agents.js';
import { clusterRoutes } from './routes/cluster.js';
import { dashboardRoutes } from './routes/dashboard.js';
import { jobRoutes } from './routes/jobs.js';
import { logRoutes } from './routes/logs.js';
import { packageRoutes } from './routes/packages.js';
import { scheduleRoutes } from './routes/schedules.js';
import { tokenRoutes } from './routes/tokens.js';
import { nodeRoutes } from './routes/nodes.js';

export type { HeadContext } from './context.js';

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal | null;
    /** The dashboard session the request came with, if it came with one. */
    session: SessionRow | null;
  }
}

/** Map framework errors (bad JSON, body too large...) onto raysub's stable codes. */
export function normaliseHttpError(err: unknown): RaysubError {
  if (err instanceof RaysubError) return err;
  const e = err as Partial<FastifyError> & { statusCode?: number };
  const status = e.statusCode ?? 500;
  if (status === 413) return new RaysubError('PAYLOAD_TOO_LARGE', 'request body is too large');
  if (status === 415) return new RaysubError('UNSUPPORTED_MEDIA_TYPE', e.message ?? 'unsupported content type');
  if (status === 400 && (e instanceof SyntaxError || /JSON/i.test(e.message ?? '') || e.code?.startsWith('FST_ERR_CTP'))) {
    return new RaysubError('INVALID_JSON', `request body is not valid JSON: ${e.message ?? ''}`.trim());
  }
  if (status >= 400 && status < 500) return new RaysubError('INVALID_REQUEST', e.message ?? 'bad request', { httpStatus: status });
  return toRaysubError(err);
}

export interface ServerOptions {
  http: HttpLimits;
  tls: ServerTls | null;
}

export async function buildServer(ctx: HeadContext, opts: ServerOptions): Promise<FastifyInstance> {
  const httpLog = ctx.log.child({ component: 'http' });
  const app = Fastify({
    serverFactory: (handler) => createHeadServer(handler, opts.http, opts.tls, httpLog),
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-assertion -- pino's Logger is wider than Fastify's
    loggerInstance: httpLog as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 500 },
    bodyLimit: 8 * 1024 * 1024,
    forceCloseConnections: true,
  });
  app.decorateRequest('principal', null);
  app.decorateRequest('session', null);
  await app.register(websocket, { options: { maxPayload: 1024 * 1024 } });

  // Who the request speaks for (dashboard/requestAuth.ts). As Ray's token auth: no token is 401,
  // a token the head does not know is 403 (Ray's client words the two differently).
  app.addHook('onRequest', async (req) => {
    // Each route says who may call it (routes/*.ts); unknown paths are the user API's.
    const access = (req.routeOptions.config as { access?: Access } | undefined)?.access ?? 'user';
    if (access === 'public') return;
    const { principal, session } = identify(req, access, ctx.auth, ctx.dashboard.sessions);
    req.principal = principal;
    req.session = session;
  });

  // A body nested past any request's need is refused before a handler recurses into it.
  app.addHook('preValidation', async (req) => {
    if (nestsDeeperThan(req.body, MAX_JSON_DEPTH)) {
      throw new RaysubError('INVALID_JSON', `request body nests objects and arrays more than ${MAX_JSON_DEPTH} levels deep`);
    }
  });

  app.setErrorHandler((err, req, reply) => {
    const e = normaliseHttpError(err);
    if (e.httpStatus >= 500) req.log.error({ err }, 'request failed');
    void reply.status(e.httpStatus).type('application/json').send(e.toJSON());
  });
  app.setNotFoundHandler((req, reply) => {
    void reply.status(404).send(new RaysubError('NOT_FOUND', `no route for ${req.method} ${req.url.split('?')[0]}`).toJSON());
  });

  await app.register(clusterRoutes(ctx));
  await app.register(jobRoutes(ctx));
  await app.register(logRoutes(ctx));
  await app.register(packageRoutes(ctx));
  await app.register(agentRoutes(ctx));
  await app.register(scheduleRoutes(ctx));
  await app.register(tokenRoutes(ctx));
  await app.register(nodeRoutes(ctx));
  await app.register(dashboardRoutes(ctx));
  return app;
}
