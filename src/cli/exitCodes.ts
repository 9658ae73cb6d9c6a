import type { ErrorCode } from '../shared/errors.js';
import type { JobDetails } from '../shared/protocol/index.js';

/** The CLI's exit codes: a contract, documented in the README. */
export const EXIT = {
  OK: 0,
  JOB_FAILED: 1,
  USAGE: 64,
  REJECTED: 65,
  INTERNAL: 70,
  UNREACHABLE: 69,
  /** Ctrl-C while `submit` followed a job: the CLI let go; the job runs on. */
  DETACHED: 75,
  TLS: 76,
  UNAUTHORIZED: 77,
  WAIT_TIMEOUT: 124,
  STOPPED: 130,
} as const;

/**
 * A finished job's exit code: 0, its own code when its entrypoint failed with one (128 + N, as a
 * shell says it, for one killed by signal N), 1 otherwise, 130 if stopped. A process raysub killed
 * (timeout, OOM) has a code, but not one of its own.
 */
export function exitCodeForJob(job: Pick<JobDetails, 'status' | 'driver_exit_code'> & { raysub: Pick<JobDetails['raysub'], 'error_type'> }): number {
  switch (job.status) {
    case 'SUCCEEDED':
      return EXIT.OK;
    case 'STOPPED':
      return EXIT.STOPPED;
    case 'FAILED': {
      const raw = job.driver_exit_code;
      const code = raw !== null && raw < 0 ? 128 - raw : raw;
      return job.raysub.error_type === 'ENTRYPOINT_FAILED' && code !== null && code > 0 && code < 256 ? code : EXIT.JOB_FAILED;
    }
    default:
      return EXIT.JOB_FAILED;
  }
}

export function exitCodeForError(code: ErrorCode): number {
  switch (code) {
    case 'USAGE':
    case 'PACKAGE_LIMIT_EXCEEDED':
      return EXIT.USAGE;
    case 'HEAD_UNREACHABLE':
      return EXIT.UNREACHABLE;
    case 'UNAUTHORIZED':
      return EXIT.UNAUTHORIZED;
    case 'TLS_UNTRUSTED':
    case 'TLS_REQUIRED':
      return EXIT.TLS;
    case 'WAIT_TIMEOUT':
      return EXIT.WAIT_TIMEOUT;
    case 'INTERNAL':
    case 'BAD_RESPONSE':
    case 'SHUTTING_DOWN':
      return EXIT.INTERNAL;
    default:
      return EXIT.REJECTED;
  }
}
