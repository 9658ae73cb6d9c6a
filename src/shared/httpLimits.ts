/**
 * The head's HTTP server limits: timeouts, and caps on concurrent connections in total and per
 * remote address. The total defaults to three quarters of the process's open-file limit, so that
 * connections alone can never exhaust the descriptors SQLite, logs and packages need.
 */
import fs from 'node:fs';

export interface HttpLimits {
  /** Request line and headers must arrive within this (slow-header clients). */
  readonly headersTimeoutMs: number;
  /** A whole request, body included, must arrive within this (never-ending bodies, slow uploads). */
  readonly requestTimeoutMs: number;
  /** An idle keep-alive connection between requests is closed after this. */
  readonly keepAliveTimeoutMs: number;
  /** A connection on which nothing moves either way (a client that stopped reading) is closed. */
  readonly idleTimeoutMs: number;
  readonly maxConnections: number;
  readonly maxConnectionsPerAddress: number;
}

const MAX_TOTAL = 16_384;

/** The soft limit on this process's open files, from /proc (undefined where there is none). */
export function openFileLimit(): number | undefined {
  try {
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(fs.readFileSync('/proc/self/limits', 'utf8'));
    return m?.[1] && m[1] !== 'unlimited' ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** The connection caps: as given, else derived from the open-file limit. */
export function connectionLimits(total: number | undefined, perAddress: number | undefined, defaultPerAddress: number): Pick<HttpLimits, 'maxConnections' | 'maxConnectionsPerAddress'> {
  const files = openFileLimit() ?? 4096;
  const maxConnections = Math.floor(total ?? Math.max(32, Math.min(MAX_TOTAL, Math.floor(files * 0.75))));
  const maxConnectionsPerAddress = Math.floor(perAddress ?? Math.max(1, Math.min(defaultPerAddress, Math.floor(maxConnections / 2))));
  return { maxConnections, maxConnectionsPerAddress: Math.min(maxConnectionsPerAddress, maxConnections) };
}
