/**
 * The head's HTTP(S) server under its limits: timeouts for slow headers, never-ending bodies and
 * idle connections, and caps on connections in total and per remote address, so a flood of
 * connections from one place can neither exhaust the head's file descriptors nor shut out
 * everyone else. Long-polls, log streams and uploads stay inside these limits by design
 * (docs/security.md#the-heads-http-server).
 */
import http from 'node:http';
import https from 'node:https';
import type { Socket } from 'node:net';
import type { HttpLimits } from '../shared/httpLimits.js';
import type { Logger } from '../shared/log.js';

export interface ServerTls {
  cert: string;
  key: string;
}

/** How often Node checks the header and request timeouts of open connections. */
const CHECK_INTERVAL_MS = 1000;
/** Refused connections are logged at most this often (a flood must not flood the log too). */
const LOG_EVERY_MS = 60_000;

export type HttpHandler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

/** A server for Fastify's `serverFactory`: plain HTTP, or HTTPS when `tls` is given. */
export function createHeadServer(handler: HttpHandler, limits: HttpLimits, tls: ServerTls | null, log: Logger): http.Server {
  const options: http.ServerOptions = {
    headersTimeout: limits.headersTimeoutMs,
    requestTimeout: Math.max(limits.requestTimeoutMs, limits.headersTimeoutMs),
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    connectionsCheckingInterval: CHECK_INTERVAL_MS,
  };
  const server: http.Server = tls
    ? https.createServer({ ...options, cert: tls.cert, key: tls.key, handshakeTimeout: limits.headersTimeoutMs }, handler)
    : http.createServer(options, handler);
  server.setTimeout(limits.idleTimeoutMs);
  server.maxConnections = limits.maxConnections;
  guardConnections(server, limits, log);
  return server;
}

/** Count connections per remote address and close at once those past the cap. */
function guardConnections(server: http.Server, limits: HttpLimits, log: Logger): void {
  const perAddress = new Map<string, number>();
  let refused = 0;
  let lastLog = 0;
  const note = (why: string, address: string): void => {
    refused++;
    const now = Date.now();
    if (now - lastLog < LOG_EVERY_MS) return;
    lastLog = now;
    log.warn({ refused, address, limit: why === 'total' ? limits.maxConnections : limits.maxConnectionsPerAddress }, `refusing connections: ${why === 'total' ? 'the head holds its maximum' : 'one address holds its maximum'}`);
    refused = 0;
  };
  server.on('drop', (data?: { remoteAddress?: string }) => note('total', data?.remoteAddress ?? '?'));
  server.on('connection', (socket: Socket) => {
    const address = socket.remoteAddress ?? '?';
    const n = (perAddress.get(address) ?? 0) + 1;
    if (n > limits.maxConnectionsPerAddress) {
      socket.destroy();
      note('address', address);
      return;
    }
    perAddress.set(address, n);
    socket.once('close', () => {
      const left = (perAddress.get(address) ?? 1) - 1;
      if (left <= 0) perAddress.delete(address);
      else perAddress.set(address, left);
    });
  });
  // A TLS handshake that fails (a plain-HTTP client, an untrusting one) is the client's business.
  server.on('tlsClientError', (err: Error & { code?: string }, socket: Socket & { _parent?: Socket }) => {
    log.debug({ err: err.message, code: err.code }, 'TLS handshake failed');
    // A plain-HTTP client gets a plain answer it can show, not a reset connection.
    const raw = socket._parent;
    if (err.code === 'ERR_SSL_HTTP_REQUEST' && raw && !raw.destroyed) {
      const body = JSON.stringify({ error: { code: 'TLS_REQUIRED', message: 'this head serves HTTPS: use an https:// address' } });
      raw.end(`HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
    }
  });
}
