/**
 * The JSON-over-HTTP call both the SDK and the agent make to a head, with errors normalised to
 * RaysubError: unreachable heads become HEAD_UNREACHABLE (retryable), error bodies keep their code.
 */
import { Agent, request, type Dispatcher } from 'undici';
import type { z } from 'zod';
import { RaysubError, isErrorCode } from './errors.js';
import { describeZodError } from './protocol/common.js';

export interface CallOptions {
  body?: unknown;
  rawBody?: Dispatcher.DispatchOptions['body'];
  headers?: Record<string, string>;
  signal?: AbortSignal;
  /** Milliseconds to wait for the response headers (long-polls raise this). */
  timeoutMs?: number;
  contentLength?: number;
}

export function createDispatcher(): Dispatcher {
  return new Agent({ keepAliveTimeout: 30_000, connections: 16, pipelining: 1, headersTimeout: 0, bodyTimeout: 0 });
}

const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_CLOSED']);

function networkError(err: unknown, url: string): RaysubError | null {
  let e: unknown = err;
  for (let depth = 0; e && depth < 4; depth++) {
    const code = (e as { code?: string }).code;
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
