/**
 * The JSON-over-HTTP call both the SDK and the agent make to a head, with errors normalised to
 * RaysubError: unreachable heads become HEAD_UNREACHABLE (retryable), error bodies keep their code.
 */
import crypto from 'node:crypto';
import tls from 'node:tls';
import type { Dispatcher } from 'undici';
import type { z } from 'zod';
import { RaysubError, isErrorCode } from './errors.js';
import { describeZodError } from './protocol/common.js';
import { Agent, buildConnector, request, type Connector } from './undici.js';

export interface CallOptions {
  body?: unknown;
  rawBody?: Dispatcher.DispatchOptions['body'];
  headers?: Record<string, string>;
  signal?: AbortSignal;
  /** Milliseconds to wait for the response headers (long-polls raise this). */
  timeoutMs?: number;
  contentLength?: number;
}

export interface DispatcherOptions {
  /** PEM of the CA(s) to trust for an https head, besides the system's. */
  ca?: string;
  /**
   * The head's own certificate (PEM, leaf first), for a client on the head's machine: that exact
   * certificate is accepted whatever names it carries (the local head may be reached as 127.0.0.1).
   */
  pin?: string;
}

export function createDispatcher(opts: DispatcherOptions = {}): Dispatcher {
  return new Agent({
    keepAliveTimeout: 30_000,
    connections: 16,
    pipelining: 1,
    headersTimeout: 0,
    bodyTimeout: 0,
    ...(opts.pin ? { connect: pinnedConnector(opts.pin) } : opts.ca ? { connect: { ca: [...tls.rootCertificates, opts.ca] } } : {}),
  });
}

/**
 * Accept exactly one certificate, whatever chain or names it has: the handshake proves the peer
 * holds its key, and nothing is sent before the comparison.
 */
function pinnedConnector(pem: string): Connector {
  const pinned = new crypto.X509Certificate(pem).fingerprint256;
  // No session resumption: a resumed session does not present the certificate again.
  const base = buildConnector({ rejectUnauthorized: false, maxCachedSessions: 0 });
  return (options, callback) =>
    base(options, (err, socket) => {
      if (err || !socket) return callback(err ?? new Error('no socket'), null);
      if (socket instanceof tls.TLSSocket && socket.getPeerCertificate().fingerprint256 !== pinned) {
        socket.destroy();
        return callback(Object.assign(new Error("the head presented another certificate than the one it was started with"), { code: 'CERT_PIN_MISMATCH' }), null);
      }
      callback(null, socket);
    });
}

const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_CLOSED']);

/** Certificate checks that failed: the head is not who a CA we trust says it is. */
const CERT_CODES = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID', 'CERT_UNTRUSTED', 'CERT_REJECTED', 'CERT_SIGNATURE_FAILURE', 'INVALID_CA', 'ERR_TLS_CERT_ALTNAME_INVALID', 'HOSTNAME_MISMATCH', 'CERT_PIN_MISMATCH',
]);

function tlsError(code: string, message: string, url: string, cause: unknown): RaysubError | null {
  const origin = new URL(url).origin;
  if (CERT_CODES.has(code)) {
    return new RaysubError('TLS_UNTRUSTED', `cannot verify the certificate of the head at ${origin} (${code}: ${message}); give the CA that signed it with --ca FILE or RAYSUB_CA`, { cause });
  }
  if (code === 'ERR_SSL_WRONG_VERSION_NUMBER' || code === 'ERR_SSL_PACKET_LENGTH_TOO_LONG' || /wrong version number|packet length too long/i.test(message)) {
    return new RaysubError('TLS_UNTRUSTED', `the head at ${origin} does not speak TLS: use an http:// address, or start the head with --tls-cert and --tls-key`, { cause });
  }
  return null;
}

/** The system error code behind a failure (ECONNREFUSED, ENOTFOUND...), looking through causes. */
export function networkCode(err: unknown): string | null {
  let e: unknown = err;
  for (let depth = 0; e && depth < 6; depth++) {
    const code = (e as { code?: string }).code;
    if (code && NETWORK_CODES.has(code)) return code;
    e = (e as { cause?: unknown }).cause;
  }
  return null;
}

function networkError(err: unknown, url: string): RaysubError | null {
  let e: unknown = err;
  for (let depth = 0; e && depth < 4; depth++) {
    const code = (e as { code?: string }).code;
    const tlsFailure = code ? tlsError(code, (e as Error).message ?? '', url, err) : null;
    if (tlsFailure) return tlsFailure;
    if (code && NETWORK_CODES.has(code)) {
      return new RaysubError('HEAD_UNREACHABLE', `cannot reach the head at ${new URL(url).origin} (${code})`, { cause: err, retryable: true });
    }
    e = (e as { cause?: unknown }).cause;
  }
  return null;
}

export async function call(dispatcher: Dispatcher, method: Dispatcher.HttpMethod, url: string, token: string | undefined, opts: CallOptions = {}): Promise<Dispatcher.ResponseData> {
  const headers: Record<string, string> = { ...opts.headers };
  if (token) headers.authorization = `Bearer ${token}`;
  let body: Dispatcher.DispatchOptions['body'] = opts.rawBody;
  if (opts.body !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(opts.body);
  }
  if (opts.contentLength !== undefined) headers['content-length'] = String(opts.contentLength);
  try {
    return await request(url, {
      method,
      headers,
      body,
      dispatcher,
      signal: opts.signal,
      headersTimeout: opts.timeoutMs ?? 30_000,
      bodyTimeout: 0,
    });
  } catch (err) {
    if (opts.signal?.aborted) throw err;
    throw networkError(err, url) ?? err;
  }
}

/** Turn a non-2xx response into a RaysubError (reading its JSON error body if it has one). */
export async function errorFrom(res: Dispatcher.ResponseData): Promise<RaysubError> {
  const text = await res.body.text().catch(() => '');
  let code: string | undefined;
  let message = text.slice(0, 500) || `HTTP ${res.statusCode}`;
  try {
    const parsed = JSON.parse(text) as { error?: { code?: string; message?: string } };
    if (parsed.error?.message) message = parsed.error.message;
    code = parsed.error?.code;
  } catch {
    // not JSON: keep the text
  }
  if (res.statusCode === 401 || res.statusCode === 403) return new RaysubError('UNAUTHORIZED', message, { httpStatus: res.statusCode });
  if (isErrorCode(code)) return new RaysubError(code, message, { httpStatus: res.statusCode });
  if (res.statusCode >= 500) return new RaysubError('INTERNAL', message, { httpStatus: res.statusCode, retryable: res.statusCode === 502 || res.statusCode === 503 });
  return new RaysubError('INVALID_REQUEST', message, { httpStatus: res.statusCode });
}

/** Call and parse a JSON response with `schema`. */
export async function callJson<T extends z.ZodType>(
  dispatcher: Dispatcher,
  method: Dispatcher.HttpMethod,
  url: string,
  token: string | undefined,
  schema: T,
  opts: CallOptions = {},
): Promise<z.infer<T>> {
  const res = await call(dispatcher, method, url, token, opts);
  if (res.statusCode < 200 || res.statusCode >= 300) throw await errorFrom(res);
  let json: unknown;
  try {
    json = await res.body.json();
  } catch (err) {
    throw new RaysubError('BAD_RESPONSE', `the head sent a response that is not JSON (${url})`, { cause: err });
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) throw new RaysubError('BAD_RESPONSE', `unexpected response from ${new URL(url).pathname}: ${describeZodError(parsed.error)}`);
  return parsed.data;
}
