import crypto from 'node:crypto';
import fs from 'node:fs';
import type { IncomingHttpHeaders } from 'node:http';
import { newToken } from '../shared/ids.js';

/** Read the cluster token from `file`, creating it (mode 0600) on first start. */
export function loadOrCreateToken(file: string): string {
  try {
    const token = fs.readFileSync(file, 'utf8').trim();
    if (token) return token;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const token = newToken();
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, token + '\n', { mode: 0o600 });
  fs.renameSync(tmp, file);
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

export type Principal = { kind: 'cluster' };

/** Compares tokens in constant time (by comparing fixed-length digests). */
export class Authenticator {
  private readonly clusterDigest: Buffer;

  constructor(clusterToken: string) {
    this.clusterDigest = digest(clusterToken);
  }

  authenticate(headers: IncomingHttpHeaders): Principal | null {
    const token = presentedToken(headers);
    if (token === null) return null;
    return crypto.timingSafeEqual(digest(token), this.clusterDigest) ? { kind: 'cluster' } : null;
  }
}
