/**
 * What every client command needs: where the head is, the token, output settings. Compiled once
 * from flags and environment.
 */
import fs from 'node:fs';
import { RaysubClient } from '../client/index.js';
import { clientSettingsFrom, noColorFromEnv, normaliseAddress, DEFAULT_PORT, type ClientFlags } from '../shared/config.js';
import { dataDirLayout } from '../shared/dataDir.js';
import { RaysubError } from '../shared/errors.js';
import { palette, type Palette } from '../ui/color.js';

export interface GlobalFlags extends ClientFlags {
  color?: boolean;
}

export interface CliContext {
  client: RaysubClient;
  address: string;
  out: NodeJS.WriteStream;
  err: NodeJS.WriteStream;
  /** Colour for stdout / stderr. */
  color: Palette;
  errColor: Palette;
  isTTY: boolean;
  /** How commands that follow a job treat a silent stream and an unreachable head. */
  follow: { idleMs: number; unreachableTimeoutMs: number };
}

interface LocalHead {
  url: string;
  token: string | null;
  /** The certificate an https local head serves. */
  cert: string | null;
}

function readOr(file: string | undefined): string | null {
  if (!file) return null;
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return null;
  }
}

function readLocalHead(dataDir: string): LocalHead | null {
  const layout = dataDirLayout(dataDir);
  try {
    const info = JSON.parse(fs.readFileSync(layout.headInfo, 'utf8')) as { url?: string; tls_cert?: string };
    if (!info.url) return null;
    return { url: info.url, token: readOr(layout.token)?.trim() || null, cert: readOr(info.tls_cert) };
  } catch {
    return null;
  }
}

function isLoopback(url: string): boolean {
  try {
    const host = new URL(url).hostname;
    return host === 'localhost' || host === '[::1]' || host.startsWith('127.');
  } catch {
    return false;
  }
}

function parseHeaders(json: string | undefined, source: string): Record<string, string> {
  if (!json) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch {
    throw new RaysubError('USAGE', `${source} must be a JSON object of header names to values`);
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new RaysubError('USAGE', `${source} must be a JSON object`);
  return Object.fromEntries(Object.entries(parsed).map(([k, v]) => [k, String(v)]));
}

export function colorEnabled(flag: boolean | undefined, stream: NodeJS.WriteStream): boolean {
  return flag !== false && !noColorFromEnv() && Boolean(stream.isTTY);
}

export function createContext(flags: GlobalFlags): CliContext {
  const settings = clientSettingsFrom(flags);
  const err = process.stderr;
  for (const w of settings.warnings) err.write(`raysub: warning: ${w}\n`);
  const local = readLocalHead(settings.dataDir);
  const explicit = settings.address;
  const address = normaliseAddress(explicit ?? local?.url ?? `http://127.0.0.1:${DEFAULT_PORT}`);
  const headers = parseHeaders(settings.headers, settings.headersFrom);
  let token = settings.token;
  const hasAuthHeader = Object.keys(headers).some((h) => h.toLowerCase() === 'authorization');
  const isLocal = local !== null && (address === normaliseAddress(local.url) || (!explicit && isLoopback(address)));
  // The local head's token is only ever sent to the local head.
  if (!token && !hasAuthHeader && isLocal && local.token) token = local.token;
  const client = new RaysubClient({
    address,
    token,
    headers,
    ca: settings.ca,
    // The local head's own certificate is trusted as it is (it may not name 127.0.0.1).
    pin: isLocal ? (local.cert ?? undefined) : undefined,
    // A head that never answers (not running, a wrong port, a typo'd host) is said within a
    // second; RAYSUB_CONNECT_RETRY_S waits longer (a pipeline step started while the head restarts).
    firstContactMs: settings.connectRetryMs,
    onRetry: ({ attempt, delayMs, error }) => {
      err.write(`raysub: ${error.message}; retrying in ${(delayMs / 1000).toFixed(1)}s (attempt ${attempt})\n`);
    },
  });
  return {
    client,
    address,
    out: process.stdout,
    err,
    color: palette(colorEnabled(flags.color, process.stdout)),
    errColor: palette(colorEnabled(flags.color, process.stderr)),
    isTTY: Boolean(process.stdout.isTTY),
    follow: { idleMs: settings.followIdleMs, unreachableTimeoutMs: settings.unreachableTimeoutMs },
  };
}
