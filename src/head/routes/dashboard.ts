import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { RaysubError, toRaysubError } from '../../shared/errors.js';
import { parseWith, sessionLoginRequestSchema, type LoginCodeResponse, type SessionInfoResponse } from '../../shared/protocol/index.js';
import type { HeadContext } from '../context.js';
import { checkSameOrigin } from '../dashboard/requestAuth.js';

const publicRoute = { config: { access: 'public' as const } };
/** The page's own paths: each serves the same single page, which routes in the browser. */
const PAGES = ['/', '/login', '/jobs', '/jobs/:id', '/nodes', '/schedules', '/schedules/:name'];
const assetParams = z.object({ name: z.string().regex(/^[A-Za-z0-9._-]{1,100}$/) });
const loginQuery = z.object({ code: z.string().max(200).optional() });

/** A page that must not be framed, cached, or leak its URL (a login code) in a Referer. */
function pageHeaders(reply: FastifyReply): FastifyReply {
  return reply
    .header('content-security-policy', "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'")
    .header('x-frame-options', 'DENY')
    .header('x-content-type-options', 'nosniff')
    .header('referrer-policy', 'no-referrer')
    .header('cache-control', 'no-store');
}

const escapeHtml = (s: string): string => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** A small page of its own (no script): the login link's answer. */
function notice(title: string, body: string, refresh: boolean): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">${refresh ? '<meta http-equiv="refresh" content="0;url=/">' : ''}<title>${escapeHtml(title)} · raysub</title></head><body><main><h1>${escapeHtml(title)}</h1><p>${escapeHtml(body)}</p><p><a href="/">Open the dashboard</a></p></main></body></html>`;
}

/**
 * The dashboard: its page and assets (public: they hold nothing of the cluster), login by a
 * one-time code or a token, the session the page runs on, and logout.
 */
export function dashboardRoutes(ctx: HeadContext): FastifyPluginAsync {
  const { sessions, assets } = ctx.dashboard;
  const secure = sessions.opts.secure;

  const page = (reply: FastifyReply): FastifyReply => {
    const index = assets.get('index.html');
    pageHeaders(reply);
    if (!index) return reply.status(503).type('text/html; charset=utf-8').send(notice('Dashboard not built', 'This head was started from a build without the dashboard: run `npm run build`.', false));
    return reply.type(index.type).send(index.body);
  };

  /** Trade a login link's code for a session cookie, then go to the page. */
  const redeem = (code: string, reply: FastifyReply): FastifyReply => {
    pageHeaders(reply).type('text/html; charset=utf-8');
    try {
      const opened = sessions.redeemCode(code);
      // A page that navigates on (not a redirect): a SameSite=Strict cookie set in a chain of
      // redirects that began on another site would not be sent on the last hop.
      return reply.header('set-cookie', sessions.cookie(opened)).send(notice('Logged in', 'Opening the dashboard…', true));
    } catch (err) {
      const e = toRaysubError(err);
      return reply.status(e.httpStatus).send(notice('Login link not valid', e.message, false));
    }
  };

  return async (app) => {
    for (const url of PAGES) {
      app.get(url, publicRoute, async (req, reply) => {
        if (url === '/login') {
          const { code } = parseWith(loginQuery, req.query);
          if (code !== undefined) return redeem(code, reply);
        }
        return page(reply);
      });
    }

    app.get('/assets/:name', publicRoute, async (req, reply) => {
      const { name } = parseWith(assetParams, req.params, 'NOT_FOUND');
      const asset = assets.get(`assets/${name}`);
      if (!asset) throw new RaysubError('NOT_FOUND', `no dashboard asset "${name}"`);
      // Names carry their content hash: a new build has new names.
      void reply.header('cache-control', 'public, max-age=31536000, immutable').header('etag', asset.etag).header('x-content-type-options', 'nosniff').type(asset.type);
      if (req.headers['if-none-match'] === asset.etag) return reply.status(304).send();
      const gzip = asset.gzip && /\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''));
      void reply.header('vary', 'accept-encoding');
      if (gzip) return reply.header('content-encoding', 'gzip').send(asset.gzip);
      return reply.send(asset.body);
    });

    // The login form: a token for a session. Only from this origin (no login CSRF).
    app.post('/api/session', publicRoute, async (req, reply): Promise<SessionInfoResponse> => {
      checkSameOrigin(req, secure, null);
      const { token } = parseWith(sessionLoginRequestSchema, req.body);
      const opened = sessions.openWithToken(token);
      void reply.header('set-cookie', sessions.cookie(opened)).header('cache-control', 'no-store');
      const found = sessions.resolve(opened.id);
      if (!found) throw new RaysubError('INTERNAL', 'a session just opened was not found');
      const info = sessions.info(found.row);
      return { kind: info.kind, name: info.name, csrf_token: info.csrf, expires_at: info.expiresAt };
    });

    app.get('/api/session', async (req, reply): Promise<SessionInfoResponse> => {
      void reply.header('cache-control', 'no-store');
      if (req.session) {
        const info = sessions.info(req.session);
        return { kind: info.kind, name: info.name, csrf_token: info.csrf, expires_at: info.expiresAt };
      }
      const p = req.principal;
      if (p?.kind !== 'admin' && p?.kind !== 'user') throw new RaysubError('FORBIDDEN', 'no session for this credential');
      return { kind: p.kind, name: p.kind === 'admin' ? 'admin' : p.name, csrf_token: null, expires_at: null };
    });

    // Logout always succeeds and always clears the cookie, even for a session that has expired.
    app.delete('/api/session', publicRoute, async (req: FastifyRequest, reply) => {
      checkSameOrigin(req, secure, null);
      const sid = sessions.cookieValue(req.headers);
      if (sid) sessions.close(sid);
      void reply.header('set-cookie', sessions.cookie(null)).header('cache-control', 'no-store');
      return { logged_out: true };
    });

    // `raysub dashboard --url`: a login link for the token that asks (never for a session, so a
    // session cannot outlive itself by minting the next one).
    app.post('/api/session/login-codes', async (req, reply): Promise<LoginCodeResponse> => {
      if (req.session) throw new RaysubError('FORBIDDEN', 'login links are made with a token, not from a dashboard session');
      if (!req.principal) throw new RaysubError('UNAUTHORIZED', 'no credential');
      const { code, expiresAt } = sessions.createCode(req.principal);
      void reply.header('cache-control', 'no-store');
      return { code, path: `/login?code=${code}`, expires_at: expiresAt };
    });
  };
}
