/**
 * Who a request speaks for. A token in a header (`Authorization`, `X-Ray-Authorization`) is
 * taken as it is: a page on another site cannot make a browser send one. A credential that rides
 * in a cookie — a dashboard session, or Ray's `ray-authentication-token` — is sent by the browser
 * whoever asked, so its state-changing requests and WebSocket upgrades must come from this
 * origin, and a session's must also carry its CSRF token (docs/security.md#the-dashboard).
 */
import type { FastifyRequest } from 'fastify';
import { RaysubError } from '../../shared/errors.js';
import type { SessionRow } from '../db/index.js';
import { presentedToken, type Access, type Authenticator, type Principal } from '../auth.js';
import { SessionManager } from './sessions.js';

export const CSRF_HEADER = 'x-csrf-token';

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

export interface RequestIdentity {
  principal: Principal;
  /** The dashboard session the request came with (null: a token header, or Ray's cookie). */
  session: SessionRow | null;
}

function hasTokenHeader(req: FastifyRequest): boolean {
  return typeof req.headers.authorization === 'string' || typeof req.headers['x-ray-authorization'] === 'string';
}

/** This head's own origin as a browser names it. */
export function ownOrigin(req: FastifyRequest, secure: boolean): string {
  return `${secure ? 'https' : 'http'}://${req.headers.host ?? ''}`;
}

/**
 * Refuse what a page on another site could have made the browser send with its cookie. `session`:
 * the session whose CSRF token an unsafe request must carry (null for Ray's cookie, whose
 * non-browser clients send no Origin and no CSRF token).
 */
export function checkSameOrigin(req: FastifyRequest, secure: boolean, session: SessionRow | null): void {
  const upgrade = req.headers.upgrade?.toLowerCase() === 'websocket';
  if (SAFE_METHODS.has(req.method) && !upgrade) return;
  const origin = req.headers.origin;
  if (origin !== undefined && origin !== ownOrigin(req, secure)) {
    throw new RaysubError('CSRF_FAILED', `a request from ${origin.slice(0, 100)} may not use this head's cookies`);
  }
  const site = req.headers['sec-fetch-site'];
  if (typeof site === 'string' && site !== 'same-origin' && site !== 'none') {
    throw new RaysubError('CSRF_FAILED', `a ${site} request may not use this head's cookies`);
  }
  if (!session) return;
  // Browsers always send Origin with a WebSocket handshake; a session's socket must show its own.
  if (upgrade && origin === undefined) throw new RaysubError('CSRF_FAILED', 'a WebSocket opened with a session cookie must carry an Origin header');
  if (!upgrade) {
    const sent = req.headers[CSRF_HEADER];
    if (!SessionManager.csrfMatches(session, typeof sent === 'string' ? sent : undefined)) {
      throw new RaysubError('CSRF_FAILED', `a state-changing request with a session cookie must carry the session's ${CSRF_HEADER} header`);
    }
  }
}

export function identify(req: FastifyRequest, access: Exclude<Access, 'public'>, auth: Authenticator, sessions: SessionManager): RequestIdentity {
  const secure = sessions.opts.secure;
  if (!hasTokenHeader(req)) {
    const sid = sessions.cookieValue(req.headers);
    const found = sid ? sessions.resolve(sid) : null;
    if (found) {
      checkSameOrigin(req, secure, found.row);
      if (access !== 'user' && access !== 'user-or-agent') throw new RaysubError('FORBIDDEN', 'a dashboard session uses the user API only: send a token for this');
      return { principal: auth.authorize(found.principal, access), session: found.row };
    }
  }
  if (presentedToken(req.headers) === null) {
    throw new RaysubError('UNAUTHORIZED', 'Unauthorized: Missing authentication token: send "Authorization: Bearer <token>"');
  }
  const principal = auth.authenticate(req.headers);
  if (!principal) throw new RaysubError('INVALID_TOKEN', 'Forbidden: Invalid authentication token: the head knows no such token (or it was revoked)');
  if (!hasTokenHeader(req)) checkSameOrigin(req, secure, null);
  return { principal: auth.authorize(principal, access), session: null };
}
