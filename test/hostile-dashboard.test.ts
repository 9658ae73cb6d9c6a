/**
 * The dashboard's login, sessions and cross-site defences, tried as a careless or hostile user
 * would, on an in-process head (real SQLite file): the page shows nothing without a session,
 * login links work once and expire, cookies are HttpOnly and SameSite=Strict, state-changing
 * requests that ride on a cookie need this origin and the session's CSRF token, revoked tokens
 * end their sessions, and neither codes nor sessions pile up without bound.
 */
import type { FastifyRequest } from 'fastify';
import { describe, expect, it, onTestFinished } from 'vitest';
import { checkSameOrigin } from '../src/head/dashboard/requestAuth.js';
import { Authenticator } from '../src/head/auth.js';
import { SessionManager } from '../src/head/dashboard/sessions.js';
import { RaysubError } from '../src/shared/errors.js';
import { inProcessHead } from './helpers/head.js';

type Head = Awaited<ReturnType<typeof inProcessHead>>;
const HOST = 'head.test:8265';
const ORIGIN = `http://${HOST}`;

interface Answer {
  status: number;
  body: string;
  json: { error?: { code: string; message: string } } & Record<string, unknown>;
  cookie: string | undefined;
}

async function req(head: Head, method: 'GET' | 'POST' | 'DELETE', url: string, headers: Record<string, string> = {}, body?: unknown): Promise<Answer> {
  const res = await head.app.inject({
    method,
    url,
    headers: { host: HOST, ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
    ...(body !== undefined ? { payload: JSON.stringify(body) } : {}),
  });
  let json: Answer['json'] = {};
  try {
    json = JSON.parse(res.body) as Answer['json'];
  } catch {
    // HTML or text
  }
  const set = res.headers['set-cookie'];
  return { status: res.statusCode, body: res.body, json, cookie: Array.isArray(set) ? set[0] : set };
}

const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` });

/** Log in with a token through the form's endpoint; returns the cookie pair and the CSRF token. */
async function login(head: Head, token: string): Promise<{ cookie: string; csrf: string; setCookie: string }> {
  const res = await req(head, 'POST', '/api/session', { origin: ORIGIN }, { token });
  expect(res.status).toBe(200);
  const setCookie = res.cookie ?? '';
  return { cookie: setCookie.split(';')[0] as string, csrf: res.json.csrf_token as string, setCookie };
}

async function userToken(head: Head, name: string): Promise<string> {
  const res = await req(head, 'POST', '/api/tokens', bearer(head.token), { kind: 'user', name });
  expect(res.status).toBe(200);
  return res.json.token as string;
}

describe('the dashboard, hostile', () => {
  it('shows nothing of the cluster without a session', async () => {
    const head = await inProcessHead();
    expect((await req(head, 'POST', '/api/jobs/', bearer(head.token), { entrypoint: 'echo secret-job', submission_id: 'secret-job-1', entrypoint_num_cpus: 1000, raysub: { wait_for_capacity: true } })).status).toBe(200);
    for (const page of ['/', '/jobs', '/jobs/secret-job-1', '/nodes', '/schedules', '/login']) {
      const res = await req(head, 'GET', page);
      // The page (or, unbuilt, its notice) is served to anyone, and holds nothing of the cluster.
      expect([200, 503]).toContain(res.status);
      expect(res.body).not.toContain('secret-job');
    }
    for (const url of ['/api/jobs/', '/api/jobs/secret-job-1', '/api/nodes', '/api/schedules', '/api/cluster/summary', '/api/cluster/history', '/api/cluster/events', '/api/session', '/api/jobs/secret-job-1/logs/download']) {
      const res = await req(head, 'GET', url);
      expect({ url, status: res.status, code: res.json.error?.code }).toEqual({ url, status: 401, code: 'UNAUTHORIZED' });
    }
    // A cookie that names no session is no session; a malformed one neither.
    for (const cookie of ['raysub_session=made-up', 'raysub_session=../../etc', 'raysub_session=' + 'x'.repeat(5000), 'raysub_session']) {
      expect((await req(head, 'GET', '/api/jobs/', { cookie })).status).toBe(401);
    }
  });

  it('serves only the built files, by exact name', async () => {
    const head = await inProcessHead();
    for (const url of ['/assets/..%2f..%2fpackage.json', '/assets/%2e%2e/index.html', '/assets/index.html', '/assets/no-such.js', '/assets/.env']) {
      const res = await req(head, 'GET', url);
      // 404, or 401 where the path is no route at all (unknown paths are the user API's).
      expect({ url, refused: [401, 404].includes(res.status), body: res.body.startsWith('{"error"') }).toEqual({ url, refused: true, body: true });
    }
    const page = await req(head, 'GET', '/');
    if (page.status === 200) {
      for (const m of page.body.matchAll(/(?:src|href)="(\/assets\/[^"]+)"/g)) {
        const res = await head.app.inject({ method: 'GET', url: m[1] as string });
        expect(res.statusCode).toBe(200);
        expect(res.headers['cache-control']).toContain('immutable');
      }
      expect(page.cookie).toBeUndefined();
    }
  });

  it('opens a session from a login link once, with an HttpOnly SameSite=Strict cookie', async () => {
    const head = await inProcessHead();
    const user = await userToken(head, 'alice');
    const made = await req(head, 'POST', '/api/session/login-codes', bearer(user), {});
    expect(made.status).toBe(200);
    const path = made.json.path as string;
    expect(path).toMatch(/^\/login\?code=[A-Za-z0-9_-]{40,}$/);

    // The same link twice at once: exactly one session.
    const [a, b] = await Promise.all([req(head, 'GET', path), req(head, 'GET', path)]);
    expect([a.status, b.status].sort()).toEqual([200, 401]);
    const ok = a.status === 200 ? a : b;
    const cookie = ok.cookie ?? '';
    expect(cookie).toMatch(/^raysub_session=[A-Za-z0-9_-]{40,}; Max-Age=\d+; Path=\/; HttpOnly; SameSite=Strict$/);
    expect(ok.body).toContain('http-equiv="refresh"');
    expect(ok.body).not.toContain(path.split('=')[1]);

    const session = await req(head, 'GET', '/api/session', { cookie: cookie.split(';')[0] as string });
    expect(session.json).toMatchObject({ kind: 'user', name: 'alice' });
    expect(session.json.csrf_token).toMatch(/^[A-Za-z0-9_-]{40,}$/);
    // A third use, later: refused.
    expect((await req(head, 'GET', path)).status).toBe(401);
    expect((await req(head, 'GET', '/login?code=' + 'A'.repeat(43))).status).toBe(401);
    expect((await req(head, 'GET', '/login?code=' + 'A'.repeat(300))).status).toBe(400);
  });

  it('refuses login links and sessions to agents, and links from sessions', async () => {
    const head = await inProcessHead();
    const agent = (await req(head, 'POST', '/api/tokens', bearer(head.token), { kind: 'agent', name: 'gpu-01' })).json.token as string;
    expect((await req(head, 'POST', '/api/session/login-codes', bearer(agent), {})).json.error?.code).toBe('FORBIDDEN');
    expect((await req(head, 'POST', '/api/session', { origin: ORIGIN }, { token: agent })).json.error?.code).toBe('FORBIDDEN');
    expect((await req(head, 'POST', '/api/session', { origin: ORIGIN }, { token: 'rsu_wrong' })).json.error?.code).toBe('INVALID_TOKEN');
    expect((await req(head, 'POST', '/api/session', { origin: ORIGIN }, { token: 'x'.repeat(5000) })).json.error?.code).toBe('INVALID_REQUEST');
    expect((await req(head, 'POST', '/api/session', { origin: ORIGIN }, { token: 1 })).json.error?.code).toBe('INVALID_REQUEST');
    const s = await login(head, head.token);
    const fromSession = await req(head, 'POST', '/api/session/login-codes', { cookie: s.cookie, origin: ORIGIN, 'x-csrf-token': s.csrf }, {});
    expect(fromSession.json.error?.code).toBe('FORBIDDEN');
    // A session uses the user API only: no token administration, no agent endpoints.
    expect((await req(head, 'GET', '/api/tokens', { cookie: s.cookie })).json.error?.code).toBe('FORBIDDEN');
    expect((await req(head, 'POST', '/api/agents/register', { cookie: s.cookie, origin: ORIGIN, 'x-csrf-token': s.csrf }, {})).json.error?.code).toBe('FORBIDDEN');
    // Logging in from another site is refused (no login CSRF).
    expect((await req(head, 'POST', '/api/session', { origin: 'http://evil.test' }, { token: head.token })).json.error?.code).toBe('CSRF_FAILED');
  });

  it('makes state-changing requests that ride on a cookie prove they come from this origin', async () => {
    const head = await inProcessHead();
    const submitBody = { entrypoint: 'true', entrypoint_num_cpus: 1000, raysub: { wait_for_capacity: true } };
    const s = await login(head, head.token);
    const cases: [what: string, headers: Record<string, string>, status: number, code?: string][] = [
      ['no CSRF token', { cookie: s.cookie }, 403, 'CSRF_FAILED'],
      ['a wrong CSRF token', { cookie: s.cookie, 'x-csrf-token': 'nope' }, 403, 'CSRF_FAILED'],
      ['another origin', { cookie: s.cookie, 'x-csrf-token': s.csrf, origin: 'http://evil.test' }, 403, 'CSRF_FAILED'],
      ['a cross-site fetch', { cookie: s.cookie, 'x-csrf-token': s.csrf, 'sec-fetch-site': 'cross-site' }, 403, 'CSRF_FAILED'],
      ['a null origin', { cookie: s.cookie, 'x-csrf-token': s.csrf, origin: 'null' }, 403, 'CSRF_FAILED'],
      ['the page itself', { cookie: s.cookie, 'x-csrf-token': s.csrf, origin: ORIGIN, 'sec-fetch-site': 'same-origin' }, 200],
      // A token header is never sent by a browser on another site's behalf: no CSRF token needed.
      ['a token header', { ...bearer(head.token), origin: 'http://evil.test' }, 200],
      // Ray's cookie: its non-browser clients send no Origin; a browser on another site does.
      ['Ray\'s cookie from another site', { cookie: `ray-authentication-token=${head.token}`, origin: 'http://evil.test' }, 403, 'CSRF_FAILED'],
      ['Ray\'s cookie from a script', { cookie: `ray-authentication-token=${head.token}` }, 200],
    ];
    for (const [what, headers, status, code] of cases) {
      const res = await req(head, 'POST', '/api/jobs/', headers, submitBody);
      expect({ what, status: res.status, code: res.json.error?.code }).toEqual({ what, status, code });
    }
    // Reading needs no CSRF token (SameSite=Strict keeps the cookie off other sites' requests).
    expect((await req(head, 'GET', '/api/jobs/', { cookie: s.cookie })).status).toBe(200);
  });

  it('asks a WebSocket opened with a session cookie for this origin', () => {
    const row = { id_hash: 'h', kind: 'user' as const, credential: 'tok', name: 'a', csrf: 'c', created_at: 0, expires_at: 1, last_seen_at: 0 };
    const ws = (headers: Record<string, string>) => ({ method: 'GET', headers: { host: HOST, upgrade: 'websocket', ...headers } }) as unknown as FastifyRequest;
    const refused = (fn: () => void): string | null => {
      try {
        fn();
        return null;
      } catch (err) {
        return err instanceof RaysubError ? err.code : 'other';
      }
    };
    expect(refused(() => checkSameOrigin(ws({}), false, row))).toBe('CSRF_FAILED');
    expect(refused(() => checkSameOrigin(ws({ origin: 'http://evil.test' }), false, row))).toBe('CSRF_FAILED');
    expect(refused(() => checkSameOrigin(ws({ origin: ORIGIN }), false, row))).toBeNull();
    expect(refused(() => checkSameOrigin(ws({ origin: ORIGIN }), true, row))).toBe('CSRF_FAILED');
    expect(refused(() => checkSameOrigin(ws({ origin: `https://${HOST}` }), true, row))).toBeNull();
  });

  it('ends sessions on logout, on revoking their token, and when they expire', async () => {
    const head = await inProcessHead();
    const user = await userToken(head, 'bob');
    const s = await login(head, user);
    expect((await req(head, 'GET', '/api/jobs/', { cookie: s.cookie })).status).toBe(200);

    // Revoking the token ends its session at the next request.
    expect((await req(head, 'DELETE', '/api/tokens/bob', bearer(head.token))).status).toBe(200);
    expect((await req(head, 'GET', '/api/jobs/', { cookie: s.cookie })).status).toBe(401);

    const admin = await login(head, head.token);
    const out = await req(head, 'DELETE', '/api/session', { cookie: admin.cookie, origin: ORIGIN });
    expect(out.status).toBe(200);
    expect(out.cookie).toMatch(/^raysub_session=; Max-Age=0; Path=\/; HttpOnly; SameSite=Strict$/);
    expect((await req(head, 'GET', '/api/jobs/', { cookie: admin.cookie })).status).toBe(401);
    // Logging out twice, or with no session, is fine; from another site it is refused.
    expect((await req(head, 'DELETE', '/api/session', { cookie: admin.cookie })).status).toBe(200);
    expect((await req(head, 'DELETE', '/api/session', { origin: 'http://evil.test' })).status).toBe(403);

    // Expiry and idleness, decided on the real store with a clock the test holds.
    const sessions = new SessionManager(head.store, new Authenticator(head.token, head.store), head.token, { ttlMs: 10_000, idleMs: 4_000, codeTtlMs: 1000, secure: false });
    const t0 = 1_000_000_000_000;
    const code = sessions.createCode({ kind: 'admin' }, t0);
    expect(() => sessions.redeemCode(code.code, t0 + 1000)).toThrow(/expired or was used/);
    const idle = sessions.openWithToken(head.token, t0);
    expect(sessions.resolve(idle.id, t0 + 3999)).not.toBeNull();
    const idle2 = sessions.openWithToken(head.token, t0);
    expect(sessions.resolve(idle2.id, t0 + 4000)).toBeNull();
    // In use every 3 s it outlives the idle limit, but not its lifetime.
    const used = sessions.openWithToken(head.token, t0);
    for (const t of [3000, 6000, 9000, 9999]) expect(sessions.resolve(used.id, t0 + t)).not.toBeNull();
    expect(sessions.resolve(used.id, t0 + 10_000)).toBeNull();
    // Once refused, it is gone for good.
    expect(sessions.resolve(used.id, t0 + 1)).toBeNull();
  });

  it('bounds the sessions and codes one credential can pile up', async () => {
    const head = await inProcessHead();
    const user = await userToken(head, 'carol');
    for (let i = 0; i < 130; i++) expect((await req(head, 'POST', '/api/session', { origin: ORIGIN }, { token: user })).status).toBe(200);
    const n = (head.store.db.prepare('SELECT COUNT(*) AS n FROM sessions').get() as { n: number }).n;
    expect(n).toBe(100);
    const first = await req(head, 'POST', '/api/session/login-codes', bearer(user), {});
    for (let i = 0; i < 1100; i++) await req(head, 'POST', '/api/session/login-codes', bearer(user), {});
    // The oldest codes went first: the first one no longer opens anything.
    expect((await req(head, 'GET', first.json.path as string)).status).toBe(401);
    // The head keeps serving.
    expect((await req(head, 'GET', '/api/version', bearer(head.token))).status).toBe(200);
  });

  it('gives back every event stream and log download, however the reader leaves, and bounds the streams', async () => {
    // A cap of 16 streams (256 by default): the same code paths, a sixteenth of the connections.
    const cap = 16;
    const head = await inProcessHead({ maxEventStreams: cap });
    const port = await head.serve('127.0.0.1', 0);
    const base = `http://127.0.0.1:${port}`;
    const auth = bearer(head.token);
    const baseline = head.engine.listenerCount('job');
    const followers = async (): Promise<string | undefined> => /^raysub_log_followers (\d+)$/m.exec(await (await fetch(`${base}/metrics`, { headers: auth })).text())?.[1];

    // As many event streams as allowed, then one more: refused with a retryable 429, the head serving on.
    const streams: AbortController[] = [];
    onTestFinished(() => streams.forEach((ac) => ac.abort()));
    for (let i = 0; i < cap; i++) {
      const ac = new AbortController();
      streams.push(ac);
      const res = await fetch(`${base}/api/cluster/events`, { headers: auth, signal: ac.signal });
      expect(res.status).toBe(200);
    }
    expect(head.engine.listenerCount('job')).toBeGreaterThan(baseline);
    const over = await fetch(`${base}/api/cluster/events`, { headers: auth });
    expect({ status: over.status, code: ((await over.json()) as { error: { code: string } }).error.code }).toEqual({ status: 429, code: 'TOO_MANY_REQUESTS' });
    // Readers that go away: every stream, and the engine's listener, is given back.
    for (const ac of streams) ac.abort();
    await expect.poll(() => head.engine.listenerCount('job'), { timeout: 10_000 }).toBe(baseline);
    const again = new AbortController();
    const res = await fetch(`${base}/api/cluster/events`, { headers: auth, signal: again.signal });
    expect(res.status).toBe(200);
    again.abort();
    await expect.poll(() => head.engine.listenerCount('job'), { timeout: 10_000 }).toBe(baseline);

    // A download whose reader stops after the first bytes: its follower is released.
    expect((await req(head, 'POST', '/api/jobs/', auth, { entrypoint: 'true', submission_id: 'big-log', entrypoint_num_cpus: 1000, raysub: { wait_for_capacity: true } })).status).toBe(200);
    // 8 MiB: more than loopback's socket buffers hold, so the head is still writing when the reader goes.
    const chunk = Buffer.from(('x'.repeat(1023) + '\n').repeat(64));
    let at = 0;
    for (let i = 0; i < 128; i++) at = head.logs.appendAt('big-log', 0, 1, at, chunk, 'stdout');
    const download = new AbortController();
    const body = await fetch(`${base}/api/jobs/big-log/logs/download`, { headers: auth, signal: download.signal });
    expect(body.status).toBe(200);
    await body.body!.getReader().read();
    expect(await followers()).toBe('1');
    download.abort();
    await expect.poll(followers, { timeout: 10_000 }).toBe('0');
    // Read whole, it is the whole log.
    const whole = await fetch(`${base}/api/jobs/big-log/logs/download`, { headers: auth });
    expect((await whole.arrayBuffer()).byteLength).toBe(at);
    await expect.poll(followers, { timeout: 10_000 }).toBe('0');
  });
});
