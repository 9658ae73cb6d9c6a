/**
 * Dashboard sessions: a browser logs in with a one-time code (`raysub dashboard --url`) or a
 * token, and from then on holds only a random session id in an HttpOnly, SameSite=Strict cookie.
 * The head keeps the id's SHA-256, the credential the session was opened with (revoking that
 * token ends its sessions), an expiry, and the CSRF token the page must send back with every
 * state-changing request (docs/security.md#the-dashboard).
 */
import crypto from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { RaysubError } from '../../shared/errors.js';
import type { SessionRow, Store } from '../db/index.js';
import type { Authenticator, Principal } from '../auth.js';

export interface SessionOptions {
  /** A session ends this long after login, whatever happens. */
  ttlMs: number;
  /** ...or after this long without a request. */
  idleMs: number;
  /** A login code is good once, for this long. */
  codeTtlMs: number;
  /** Cookies carry `Secure` (the head serves HTTPS). */
  secure: boolean;
}

/** Who a session speaks for: the dashboard only ever uses the user API. */
export type SessionPrincipal = Extract<Principal, { kind: 'admin' | 'user' }>;

export interface OpenedSession {
  id: string;
  csrf: string;
  expiresAt: number;
}

export interface SessionInfo {
  kind: 'admin' | 'user';
  name: string;
  csrf: string;
  expiresAt: number;
}

/** Bounds: a script opening sessions or codes in a loop fills neither the database nor memory. */
const MAX_SESSIONS_PER_CREDENTIAL = 100;
const MAX_SESSIONS = 10_000;
const MAX_CODES = 1000;
/** last_seen_at is written at most this often per session (not on every request). */
const TOUCH_EVERY_MS = 60_000;

const digest = (value: string): string => crypto.createHash('sha256').update(value).digest('hex');
const random = (): string => crypto.randomBytes(32).toString('base64url');

export class SessionManager {
  /** Login codes by digest: in memory only, so a head restart voids them (they live a minute). */
  private readonly codes = new Map<string, { principal: SessionPrincipal; expiresAt: number }>();
  private readonly adminCredential: string;
  readonly cookieName: string;

  constructor(
    private readonly store: Pick<Store, 'sessions' | 'tx'>,
    private readonly auth: Authenticator,
    adminToken: string,
    readonly opts: SessionOptions,
  ) {
    // Sessions opened with an admin token that was since replaced do not outlive it.
    this.adminCredential = `admin:${digest(`raysub dashboard session ${adminToken}`).slice(0, 32)}`;
    // A `__Host-` cookie is bound to this origin: no other host or path may set or shadow it.
    this.cookieName = opts.secure ? '__Host-raysub_session' : 'raysub_session';
  }

  /** A one-time login code for a user (or the admin); agents have no dashboard. */
  createCode(p: Principal, now = Date.now()): { code: string; expiresAt: number } {
    const principal = this.sessionPrincipal(p);
    for (const [k, c] of this.codes) if (c.expiresAt <= now) this.codes.delete(k);
    while (this.codes.size >= MAX_CODES) {
      const oldest = this.codes.keys().next();
      if (oldest.done) break;
      this.codes.delete(oldest.value);
    }
    const code = random();
    const expiresAt = now + this.opts.codeTtlMs;
    this.codes.set(digest(code), { principal, expiresAt });
    return { code, expiresAt };
  }

  /** Trade a login code for a session; a code works once, and not after it expired. */
  redeemCode(code: string, now = Date.now()): OpenedSession {
    const key = digest(code);
    const found = this.codes.get(key);
    this.codes.delete(key);
    if (!found || found.expiresAt <= now) throw new RaysubError('UNAUTHORIZED', 'this login link has expired or was used already: run `raysub dashboard --url` again');
    return this.open(found.principal, now);
  }

  /** Trade a token (the login form) for a session. */
  openWithToken(token: string, now = Date.now()): OpenedSession {
    const p = this.auth.authenticate({ authorization: `Bearer ${token}` });
    if (!p) throw new RaysubError('INVALID_TOKEN', 'this head knows no such token (or it was revoked)');
    return this.open(this.sessionPrincipal(p), now);
  }

  private sessionPrincipal(p: Principal): SessionPrincipal {
    if (p.kind === 'agent') throw new RaysubError('FORBIDDEN', 'an agent credential cannot open a dashboard session: use a user token');
    return p;
  }

  private open(p: SessionPrincipal, now: number): OpenedSession {
    const id = random();
    const csrf = random();
    const row: SessionRow = {
      id_hash: digest(id),
      kind: p.kind,
      credential: p.kind === 'admin' ? this.adminCredential : p.id,
      name: p.kind === 'admin' ? 'admin' : p.name,
      csrf,
      created_at: now,
      expires_at: now + this.opts.ttlMs,
      last_seen_at: now,
    };
    this.store.tx(() => {
      this.store.sessions.removeExpired(now, now - this.opts.idleMs);
      this.store.sessions.insert(row);
      this.store.sessions.trim(row.credential, MAX_SESSIONS_PER_CREDENTIAL, MAX_SESSIONS);
    });
    return { id, csrf, expiresAt: row.expires_at };
  }

  /** The session id a request's cookie carries, if any. */
  cookieValue(headers: IncomingHttpHeaders): string | null {
    const cookie = headers.cookie;
    if (!cookie) return null;
    for (const part of cookie.split(';')) {
      const eq = part.indexOf('=');
      if (eq > 0 && part.slice(0, eq).trim() === this.cookieName) {
        const value = part.slice(eq + 1).trim();
        return /^[A-Za-z0-9_-]{1,100}$/.test(value) ? value : null;
      }
    }
    return null;
  }

  /** The live session a cookie names: null when it is unknown, expired, idle too long, or its credential was revoked. */
  resolve(id: string, now = Date.now()): { principal: SessionPrincipal; row: SessionRow } | null {
    const key = digest(id);
    const row = this.store.sessions.get(key);
    if (!row) return null;
    const live = row.expires_at > now && row.last_seen_at > now - this.opts.idleMs && this.credentialStands(row);
    if (!live) {
      this.store.sessions.remove(key);
      return null;
    }
    if (now - row.last_seen_at >= Math.min(TOUCH_EVERY_MS, this.opts.idleMs / 4)) this.store.sessions.touch(key, now);
    const principal: SessionPrincipal = row.kind === 'admin' ? { kind: 'admin' } : { kind: 'user', id: row.credential, name: row.name };
    return { principal, row };
  }

  private credentialStands(row: SessionRow): boolean {
    return row.kind === 'admin' ? row.credential === this.adminCredential : this.auth.credentialValid(row.credential);
  }

  /** Log out: forget the session (unknown ids are fine: logging out twice is not an error). */
  close(id: string): void {
    this.store.sessions.remove(digest(id));
  }

  /** Whether the CSRF token a request sent is its session's (compared in constant time). */
  static csrfMatches(row: SessionRow, sent: string | undefined): boolean {
    if (!sent) return false;
    const a = Buffer.from(digest(row.csrf));
    const b = Buffer.from(digest(sent));
    return crypto.timingSafeEqual(a, b);
  }

  /** The Set-Cookie value that stores a session in the browser (or, with null, removes it). */
  cookie(session: OpenedSession | null, now = Date.now()): string {
    const attrs = ['Path=/', 'HttpOnly', 'SameSite=Strict', ...(this.opts.secure ? ['Secure'] : [])];
    if (!session) return [`${this.cookieName}=`, 'Max-Age=0', ...attrs].join('; ');
    const maxAge = Math.max(0, Math.floor((session.expiresAt - now) / 1000));
    return [`${this.cookieName}=${session.id}`, `Max-Age=${maxAge}`, ...attrs].join('; ');
  }

  info(row: SessionRow): SessionInfo {
    return { kind: row.kind, name: row.name, csrf: row.csrf, expiresAt: row.expires_at };
  }
}
