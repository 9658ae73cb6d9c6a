/**
 * Errors with stable codes. A code is part of the public contract: it travels over HTTP as
 * `{"error": {"code", "message"}}`, and the CLI maps it to an exit code.
 */

export const errorCodes = {
  // client mistakes
  INVALID_REQUEST: 400,
  INVALID_JSON: 400,
  INVALID_SUBMISSION_ID: 400,
  INVALID_RUNTIME_ENV: 400,
  INVALID_PACKAGE: 400,
  INVALID_CURSOR: 400,
  INVALID_SCHEDULE: 400,
  /** `after`/`after_any` names a job that does not exist, or the job itself. */
  INVALID_DEPENDENCY: 400,
  /** Plain HTTP sent to a head that serves HTTPS. */
  TLS_REQUIRED: 400,
  /** No token was presented. */
  UNAUTHORIZED: 401,
  /** A token was presented that the head does not know (or that was revoked). */
  INVALID_TOKEN: 403,
  /** Authenticated, but this credential may not do that (a user on an agent endpoint...). */
  FORBIDDEN: 403,
  /** A state-changing request carried a cookie but not this origin's CSRF token (or came from another origin). */
  CSRF_FAILED: 403,
  JOB_NOT_FOUND: 404,
  PACKAGE_NOT_FOUND: 404,
  NODE_NOT_FOUND: 404,
  SCHEDULE_NOT_FOUND: 404,
  NOT_FOUND: 404,
  TOKEN_NOT_FOUND: 404,
  JOB_ALREADY_EXISTS: 409,
  JOB_NOT_TERMINAL: 409,
  /** Hold or release asked of a job that is no longer pending. */
  JOB_NOT_PENDING: 409,
  SCHEDULE_ALREADY_EXISTS: 409,
  TOKEN_EXISTS: 409,
  /** Another live agent holds the node name, or it is bound to another credential. */
  NODE_NAME_TAKEN: 409,
  PACKAGE_CONFLICT: 409,
  /** `node forget` of a node whose agent is alive (stop the agent first: it would register again). */
  NODE_ALIVE: 409,
  NODE_LOST: 410,
  PACKAGE_TOO_LARGE: 413,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  TOO_MANY_REQUESTS: 429,
  // server side
  INTERNAL: 500,
  SHUTTING_DOWN: 503,
  /** An agent runs as many tasks as it can at once (its launcher's capacity). */
  NODE_AT_CAPACITY: 503,
  /** The head's disk is full: the request stored nothing; retry once there is room. */
  DISK_FULL: 507,
  // client side only (never sent by the head)
  HEAD_UNREACHABLE: 0,
  TLS_UNTRUSTED: 0,
  USAGE: 0,
  WAIT_TIMEOUT: 0,
  PACKAGE_LIMIT_EXCEEDED: 0,
  /** An agent could not fetch a remote package named in a runtime env (the task's setup fails). */
  PACKAGE_FETCH_FAILED: 0,
  BAD_RESPONSE: 0,
} as const;

export type ErrorCode = keyof typeof errorCodes;

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(errorCodes, value);
}

export class RaysubError extends Error {
  readonly code: ErrorCode;
  readonly httpStatus: number;
  readonly retryable: boolean;

  constructor(
    code: ErrorCode,
    message: string,
    options: { cause?: unknown; retryable?: boolean; httpStatus?: number } = {},
  ) {
    super(message, { cause: options.cause });
    this.name = 'RaysubError';
    this.code = code;
    this.httpStatus = options.httpStatus ?? (errorCodes[code] || 500);
    this.retryable = options.retryable ?? (code === 'HEAD_UNREACHABLE' || code === 'SHUTTING_DOWN' || code === 'NODE_AT_CAPACITY' || code === 'TOO_MANY_REQUESTS');
  }

  toJSON(): { error: { code: ErrorCode; message: string } } {
    return { error: { code: this.code, message: this.message } };
  }
}

/** Normalise anything thrown into a RaysubError (unknown errors become INTERNAL). */
export function toRaysubError(err: unknown): RaysubError {
  if (err instanceof RaysubError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new RaysubError('INTERNAL', message, { cause: err });
}
