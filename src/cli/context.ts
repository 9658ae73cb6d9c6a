/**
 * What every client command needs: where the head is, the token, output settings. Compiled once
 * from flags and environment.
 */
import fs from 'node:fs';
import path from 'node:path';
import { RaysubClient } from '../client/index.js';
import { clientEnv, normaliseAddress, DEFAULT_PORT } from '../shared/config.js';
import { RaysubError } from '../shared/errors.js';
import { palette, type Palette } from '../ui/color.js';

export interface GlobalFlags {
  address?: string;
  token?: string;
  headers?: string;
  color?: boolean;
  dataDir?: string;
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
}

function readLocalHead(dataDir: string): LocalHead | null {
  try {
    const info = JSON.parse(fs.readFileSync(path.join(dataDir, 'head.json'), 'utf8')) as { url?: string };
    if (!info.url) return null;
    let token: string | null = null;
    try {
      token = fs.readFileSync(path.join(dataDir, 'token'), 'utf8').trim();
    } catch {
      token = null;
    }
    return { url: info.url, token };
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
  const env = clientEnv();
  return flag !== false && !env.noColor && Boolean(stream.isTTY);
}

export function createContext(flags: GlobalFlags): CliContext {
  const env = clientEnv();
  const dataDir = flags.dataDir ? path.resolve(flags.dataDir) : env.dataDir;
  const local = readLocalHead(dataDir);
  const explicit = flags.address ?? env.address;
  const address = normaliseAddress(explicit ?? local?.url ?? `http://127.0.0.1:${DEFAULT_PORT}`);
  const headers = parseHeaders(flags.headers ?? env.rayJobHeaders, flags.headers ? '--headers' : 'RAY_JOB_HEADERS');
  let token = flags.token ?? env.token;
  const hasAuthHeader = Object.keys(headers).some((h) => h.toLowerCase() === 'authorization');
  // The local head's token is only ever sent to the local head.
  if (!token && !hasAuthHeader && local?.token && (address === normaliseAddress(local.url) || (!explicit && isLoopback(address)))) {
    token = local.token;
  }
  const err = process.stderr;
  const client = new RaysubClient({
    address,
    token,
    headers,
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
    follow: { idleMs: env.followIdleMs, unreachableTimeoutMs: env.unreachableTimeoutMs },
  };
}
