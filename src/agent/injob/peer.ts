/**
 * Agent-to-agent transport for what is too large to relay through the head: each agent runs a
 * small HTTP server (on an ephemeral port of the address it reaches the head from) that serves
 * its jobs' large objects and answers where an object it owns stands. Callers authenticate with
 * the peer token the head gives every agent at registration: no job process can ask.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { pipeline } from 'node:stream/promises';
import type { Dispatcher } from 'undici';
import { freeRequestSchema, jobIdSchema, objectIdSchema, parseWith, refsRequestSchema, refsResponseSchema, type RefsResponse } from '../../shared/protocol/index.js';
import { runGuarded } from '../../shared/boundary.js';
import type { Logger } from '../../shared/log.js';
import { Agent, request } from '../../shared/undici.js';

/** A refs request names at most 10,000 ids of at most 64 characters. */
const MAX_REFS_BODY = 1024 * 1024;

export interface PeerBackend {
  /** A local file holding object `id` of `job`, or null. */
  objectFile(job: string, id: string): string | null;
  refs(job: string, ids: string[], waitMs: number): Promise<RefsResponse>;
  /** The owner of these objects of `job` dropped them: free what is held here. */
  free(job: string, ids: string[]): void;
}

/** The local address this machine uses to reach `url`'s host, so peers reach us the same way. */
export function localAddressFor(url: string): Promise<string> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const s = net.connect({ host: u.hostname.replace(/^\[|\]$/g, ''), port: Number(u.port || 80) });
    const done = (addr: string): void => {
      s.destroy();
      resolve(addr);
    };
    s.once('connect', () => done(s.localAddress ?? '127.0.0.1'));
    s.once('error', () => done('127.0.0.1'));
  });
}

export class PeerServer {
  private server: http.Server | null = null;
  address: string | null = null;

  constructor(
    private readonly token: () => string,
    private readonly backend: PeerBackend,
    private readonly log: Logger,
  ) {}

  async start(host: string): Promise<void> {
    const server = http.createServer((req, res) => runGuarded(this.log, 'peer request', () => this.handle(req, res)));
    server.on('error', (err) => this.log.warn({ err }, 'object server error'));
    server.keepAliveTimeout = 30_000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, host, () => resolve());
    });
    const a = server.address();
    if (a && typeof a === 'object') this.address = `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`;
    this.server = server;
  }

  private authorised(req: http.IncomingMessage): boolean {
    const token = this.token();
    if (!token) return false; // not registered yet
    const got = Buffer.from(req.headers.authorization ?? '');
    const want = Buffer.from(`Bearer ${token}`);
    return got.length === want.length && crypto.timingSafeEqual(got, want);
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    try {
      if (!this.authorised(req)) return end(res, 401, { error: 'unauthorised' });
      const url = new URL(req.url ?? '/', 'http://x');
      const m = /^\/v1\/jobs\/([^/]+)\/objects\/([^/]+)$/.exec(url.pathname);
      if (req.method === 'GET' && m) {
        const job = jobIdSchema.safeParse(decodeURIComponent(m[1] ?? ''));
        const id = objectIdSchema.safeParse(decodeURIComponent(m[2] ?? ''));
        if (!job.success || !id.success) return end(res, 400, { error: 'invalid job or object id' });
        const file = this.backend.objectFile(job.data, id.data);
        if (!file) return end(res, 404, { error: 'no such object' });
        const size = fs.statSync(file).size;
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(size) });
        await pipeline(fs.createReadStream(file), res);
        return;
      }
      if (req.method === 'POST' && (url.pathname === '/v1/refs' || url.pathname === '/v1/free')) {
        const chunks: Buffer[] = [];
        let size = 0;
        for await (const c of req) {
          size += (c as Buffer).length;
          if (size > MAX_REFS_BODY) return end(res, 413, { error: 'request too large' });
          chunks.push(c as Buffer);
        }
        const json: unknown = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        if (url.pathname === '/v1/free') {
          const body = parseWith(freeRequestSchema, json);
          this.backend.free(body.job_id, body.ids);
          return end(res, 200, {});
        }
        const body = parseWith(refsRequestSchema, json);
        return end(res, 200, await this.backend.refs(body.job_id, body.ids, body.wait_ms));
      }
      end(res, 404, { error: 'not found' });
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'peer request failed');
      if (!res.headersSent) end(res, 500, { error: (err as Error).message });
      else res.destroy();
    }
  }

  async close(): Promise<void> {
    const s = this.server;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }
}

function end(res: http.ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

export class PeerClient {
  private readonly dispatcher: Dispatcher = new Agent({ keepAliveTimeout: 30_000, connections: 8, headersTimeout: 0, bodyTimeout: 0 });

  constructor(private readonly token: () => string) {}

  async fetchObject(base: string, job: string, id: string, dest: string): Promise<void> {
    const res = await request(`${base}/v1/jobs/${encodeURIComponent(job)}/objects/${encodeURIComponent(id)}`, {
      method: 'GET',
      dispatcher: this.dispatcher,
      headers: { authorization: `Bearer ${this.token()}` },
    });
    if (res.statusCode !== 200) {
      const text = await res.body.text();
      throw new Error(`agent at ${base} answered ${res.statusCode}: ${text.slice(0, 200)}`);
    }
    const tmp = `${dest}.${crypto.randomBytes(4).toString('hex')}.part`;
    try {
      await pipeline(res.body, fs.createWriteStream(tmp, { mode: 0o644 }));
      fs.renameSync(tmp, dest);
    } finally {
      fs.rmSync(tmp, { force: true });
    }
  }

  async refs(base: string, job: string, ids: string[], waitMs: number): Promise<RefsResponse> {
    const res = await request(`${base}/v1/refs`, {
      method: 'POST',
      dispatcher: this.dispatcher,
      headers: { authorization: `Bearer ${this.token()}`, 'content-type': 'application/json' },
      body: JSON.stringify({ job_id: job, ids, wait_ms: waitMs }),
    });
    const body: unknown = await res.body.json();
    if (res.statusCode !== 200) throw new Error(`agent at ${base} answered ${res.statusCode}`);
    return parseWith(refsResponseSchema, body);
  }

  async free(base: string, job: string, ids: string[]): Promise<void> {
    const res = await request(`${base}/v1/free`, {
      method: 'POST',
      dispatcher: this.dispatcher,
      headers: { authorization: `Bearer ${this.token()}`, 'content-type': 'application/json' },
      body: JSON.stringify({ job_id: job, ids }),
    });
    await res.body.dump();
    if (res.statusCode !== 200) throw new Error(`agent at ${base} answered ${res.statusCode}`);
  }

  async close(): Promise<void> {
    await this.dispatcher.destroy();
  }
}
