/**
 * Who is calling: the operator's admin token (the data dir's `token` file), user tokens for the
 * user API, agent tokens for the agent endpoints, and the embedded agent's own credential. Tokens
 * made with `raysub token create` are stored as SHA-256 digests only; each route says which kinds
 * may call it (docs/security.md#credentials-and-transport).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import type { IncomingHttpHeaders } from 'node:http';
import { writePrivateFile } from '../shared/dataDir.js';
import { RaysubError } from '../shared/errors.js';
import { newToken } from '../shared/ids.js';
import type { TokenKind, TokenRow } from './db/index.js';
import type { Store } from './db/index.js';

/** Read the cluster's admin token from `file`, creating it (mode 0600) on first start. */
export function loadOrCreateToken(file: string): string {
  try {
    const token = fs.readFileSync(file, 'utf8').trim();
    if (token) return token;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const token = newToken();
  writePrivateFile(file, token + '\n');
  return token;
}

function digest(value: string): Buffer {
  return crypto.createHash('sha256').update(value).digest();
}

/** The token a request presents: `Authorization: Bearer`, Ray's `X-Ray-Authorization`, or its cookie. */
export function presentedToken(headers: IncomingHttpHeaders): string | null {
  for (const name of ['authorization', 'x-ray-authorization'] as const) {
    const value = headers[name];
    if (typeof value === 'string') {
      const m = /^Bearer\s+(.+)$/i.exec(value.trim());
      return (m?.[1] ?? value).trim();
    }
  }
  const cookie = headers.cookie;
  if (cookie) {
    const m = /(?:^|;\s*)ray-authentication-token=([^;]+)/.exec(cookie);
    if (m?.[1]) return decodeURIComponent(m[1]);
  }
  return null;
}

/** The credential of the embedded agent (its token lives only in the head's memory). */
export const LOCAL_AGENT_CREDENTIAL = 'local';
/** The admin token used as an agent's credential, as single-token clusters did. */
export const ADMIN_CREDENTIAL = 'admin';

export type Principal =
  | { kind: 'admin' }
  | { kind: 'user'; id: string; name: string }
  /** `credential`: the token id that binds the nodes it registers (or 'local', or 'admin'). */
  | { kind: 'agent'; credential: string; name: string };

/** Which principals a route serves: the user API, the agent endpoints, token administration; 'public': anyone (the dashboard's page and login). */
export type Access = 'user' | 'agent' | 'admin' | 'user-or-agent' | 'public';

export interface TokenInfo {
  id: string;
  kind: TokenKind;
  name: string;
  created_at: number;
  revoked_at: number | null;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

const info = (r: TokenRow): TokenInfo => ({ id: r.id, kind: r.kind, name: r.name, created_at: r.created_at, revoked_at: r.revoked_at });

export class Authenticator {
  private readonly adminDigest: Buffer;
  private readonly localDigest: Buffer;
  /** Valid (unrevoked) tokens by digest. */
  private readonly byDigest = new Map<string, TokenRow>();
  /** The embedded agent's token: random per head process, never written anywhere. */
  readonly localAgentToken = `rsl_${crypto.randomBytes(32).toString('base64url')}`;

  constructor(
    adminToken: string,
    private readonly store: Pick<Store, 'tokens' | 'tx'>,
  ) {
    this.adminDigest = digest(adminToken);
    this.localDigest = digest(this.localAgentToken);
    for (const row of store.tokens.all()) if (row.revoked_at === null) this.byDigest.set(row.hash, row);
  }

  authenticate(headers: IncomingHttpHeaders): Principal | null {
    const token = presentedToken(headers);
    if (token === null) return null;
    const d = digest(token);
    if (crypto.timingSafeEqual(d, this.adminDigest)) return { kind: 'admin' };
    if (crypto.timingSafeEqual(d, this.localDigest)) return { kind: 'agent', credential: LOCAL_AGENT_CREDENTIAL, name: 'embedded agent' };
    // A lookup by the digest of a 256-bit random token reveals nothing about other tokens.
    const row = this.byDigest.get(d.toString('hex'));
    if (!row) return null;
    return row.kind === 'user' ? { kind: 'user', id: row.id, name: row.name } : { kind: 'agent', credential: row.id, name: row.name };
  }

  /** Whether a principal may call a route of this access; agents acting with the admin token are the single-token setups of before. */
  authorize(p: Principal, access: Exclude<Access, 'public'>): Principal {
    if (p.kind === 'admin') {
      if (access !== 'agent') return p;
      if (this.hasAgentTokens()) {
        throw new RaysubError('FORBIDDEN', 'the admin token no longer registers agents once agent tokens exist: start the agent with one (raysub token create --kind agent)');
      }
      return { kind: 'agent', credential: ADMIN_CREDENTIAL, name: 'admin token' };
    }
    if (access === 'admin') throw new RaysubError('FORBIDDEN', 'only the admin token may manage tokens');
    if (p.kind === 'user' && access === 'agent') throw new RaysubError('FORBIDDEN', 'a user token cannot call the agent endpoints');
    if (p.kind === 'agent' && access === 'user') throw new RaysubError('FORBIDDEN', 'an agent credential cannot use the user API');
    return p;
  }

  hasAgentTokens(): boolean {
    for (const row of this.byDigest.values()) if (row.kind === 'agent') return true;
    return false;
  }

  /** Whether a node's bound credential still stands (a revoked token releases its names). */
  credentialValid(credential: string | null): boolean {
    if (credential === null) return false;
    if (credential === LOCAL_AGENT_CREDENTIAL || credential === ADMIN_CREDENTIAL) return true;
    for (const row of this.byDigest.values()) if (row.id === credential) return true;
    return false;
  }

  create(kind: TokenKind, name: string | undefined, now = Date.now()): { info: TokenInfo; token: string } {
    const id = `tok_${crypto.randomBytes(6).toString('hex')}`;
    const tokenName = name ?? `${kind}-${id.slice(4)}`;
    if (!NAME.test(tokenName)) throw new RaysubError('INVALID_REQUEST', `a token name is 1-64 letters, digits, "_", "." or "-", starting with a letter or digit; got "${tokenName}"`);
    if (this.store.tokens.find(tokenName) || this.store.tokens.find(id)) throw new RaysubError('TOKEN_EXISTS', `a token named "${tokenName}" exists already`);
    const token = `rs${kind === 'user' ? 'u' : 'a'}_${crypto.randomBytes(32).toString('base64url')}`;
    const row: TokenRow = { id, kind, name: tokenName, hash: digest(token).toString('hex'), created_at: now, revoked_at: null };
    this.store.tx(() => this.store.tokens.insert(row));
    this.byDigest.set(row.hash, row);
    return { info: info(row), token };
  }

  list(): TokenInfo[] {
    return this.store.tokens.all().map(info);
  }

  /** Revoke by id or name; requests carrying the token are refused from now on. */
  revoke(idOrName: string, now = Date.now()): TokenInfo {
    const row = this.store.tokens.find(idOrName);
    if (!row) throw new RaysubError('TOKEN_NOT_FOUND', `no token with id or name "${idOrName}"`);
    this.store.tx(() => this.store.tokens.revoke(row.id, now));
    this.byDigest.delete(row.hash);
    return info({ ...row, revoked_at: row.revoked_at ?? now });
  }
}
