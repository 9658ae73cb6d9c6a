/**
 * Fetching a remote package (an `http(s)://` archive named in a runtime env) to a file: at most
 * `maxBytes`, checked against its pinned SHA-256 when the URI has one, abandoned when the server
 * goes quiet. The URL's user, password and query never appear in what is logged or returned.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { RaysubError } from '../shared/errors.js';
import { formatBytes } from '../shared/resources.js';
import { redactUrl, type RemotePackage } from '../shared/remotePackages.js';

export interface FetchLimits {
  maxBytes: number;
  /** Give up when no byte arrives for this long. */
  idleMs: number;
}

export const DEFAULT_FETCH_IDLE_MS = 60_000;

/** Write the package's bytes to `file` (created, 0600); throws a RaysubError saying what went wrong. */
export async function fetchRemotePackage(pkg: RemotePackage, file: string, limits: FetchLimits, signal: AbortSignal): Promise<number> {
  const shown = redactUrl(pkg.url);
  const idle = new AbortController();
  let timer: NodeJS.Timeout | null = null;
  const quiet = (): void => {
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => idle.abort(), limits.idleMs);
  };
  const both = AbortSignal.any([signal, idle.signal]);
  // A user and password in the URL travel as Basic authorization (fetch takes no URL with them).
  const target = new URL(pkg.url);
  const headers: Record<string, string> = { 'user-agent': 'raysub-agent' };
  if (target.username !== '' || target.password !== '') {
    headers.authorization = `Basic ${Buffer.from(`${decodeURIComponent(target.username)}:${decodeURIComponent(target.password)}`).toString('base64')}`;
    target.username = '';
    target.password = '';
  }
  // Whatever a library says about the URL is said without its secrets.
  const scrub = (text: string): string => text.split(pkg.url).join(shown).split(target.toString()).join(shown);
  const fail = (why: string): RaysubError => new RaysubError('PACKAGE_FETCH_FAILED', `could not fetch ${shown}: ${scrub(why)}`);
  try {
    quiet();
    let res: Response;
    try {
      res = await fetch(target, { signal: both, redirect: 'follow', headers });
    } catch (err) {
      if (signal.aborted) throw err;
      throw fail(idle.signal.aborted ? `no answer within ${limits.idleMs / 1000}s` : ((err as Error).cause as Error | undefined)?.message ?? (err as Error).message);
    }
    if (!res.ok || !res.body) {
      await res.body?.cancel().catch(() => undefined);
      throw fail(`HTTP ${res.status}`);
    }
    const declared = Number(res.headers.get('content-length') ?? NaN);
    if (declared > limits.maxBytes) {
      await res.body.cancel().catch(() => undefined);
      throw fail(`it is ${formatBytes(declared)}, above the limit of ${formatBytes(limits.maxBytes)} (--max-package-size)`);
    }
    const hash = crypto.createHash('sha256');
    let bytes = 0;
    const meter = new Transform({
      transform(chunk: Buffer, _enc, done) {
        quiet();
        bytes += chunk.length;
        if (bytes > limits.maxBytes) return done(fail(`it is larger than the limit of ${formatBytes(limits.maxBytes)} (--max-package-size)`));
        hash.update(chunk);
        done(null, chunk);
      },
    });
    try {
      await pipeline(Readable.fromWeb(res.body), meter, fs.createWriteStream(file, { mode: 0o600, flags: 'wx' }), { signal: both });
    } catch (err) {
      if (signal.aborted) throw err;
      if (err instanceof RaysubError) throw err;
      throw fail(idle.signal.aborted ? `no data for ${limits.idleMs / 1000}s` : (err as Error).message);
    }
    const got = hash.digest('hex');
    if (pkg.sha256 !== null && got !== pkg.sha256) throw fail(`its SHA-256 is ${got}, not ${pkg.sha256} as the URI's #sha256= says`);
    return bytes;
  } finally {
    if (timer) clearTimeout(timer);
  }
}
