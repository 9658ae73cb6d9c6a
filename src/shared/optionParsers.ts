/** Parsers for option values, each error naming where the value came from. */
import fs from 'node:fs';
import { RaysubError } from './errors.js';
import type { Raw } from './credentials.js';
import type { ResourceMap } from './resources.js';

export function num(raw: Raw | undefined, min = 0): number | undefined {
  if (!raw) return undefined;
  const n = Number(raw.value);
  if (raw.value.trim() === '' || !Number.isFinite(n) || n < min) throw new RaysubError('USAGE', `${raw.from} must be a number >= ${min}, got "${raw.value}"`);
  return n;
}

/** Parse sizes such as "512M", "2GiB", "1000000". */
export function parseBytes(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)$/i.exec(value.trim());
  const label = name.startsWith('RAYSUB_') || name.includes(' ') ? name : `--${name}`;
  if (!m) throw new RaysubError('USAGE', `${label} must be a size such as 512M or 2G, got "${value}"`);
  const mult = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }[(m[2] ?? '').toLowerCase()] ?? 1;
  return Math.floor(Number(m[1]) * mult);
}

/**
 * A memory size: as parseBytes, but a bare number under 1 MiB is refused. Ray counts memory in
 * bytes, so `4096` is 4 KiB — far less than any process needs — and was surely meant as MiB.
 */
export function parseMemory(name: string, value: string | undefined): number | undefined {
  const n = parseBytes(name, value);
  if (n !== undefined && value !== undefined && /^\s*\d+(\.\d+)?\s*$/.test(value) && n < 1024 * 1024) {
    const label = name.startsWith('RAYSUB_') || name.includes(' ') ? name : `--${name}`;
    throw new RaysubError('USAGE', `${label} ${value.trim()} means ${n} bytes, less than any process needs: write a unit, e.g. ${value.trim()}M or 512M`);
  }
  return n;
}

/** Parse durations such as "7d", "12h", "30m", "45s", "1.5h" or plain seconds. */
export function parseDuration(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?$/i.exec(value.trim());
  const label = name.startsWith('RAYSUB_') || name.includes(' ') ? name : `--${name}`;
  if (!m) throw new RaysubError('USAGE', `${label} must be a duration such as 7d, 12h, 30m or 45s, got "${value}"`);
  const mult = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[(m[2] ?? 's').toLowerCase()] ?? 1000;
  return Math.round(Number(m[1]) * mult);
}

export function bytes(raw: Raw | undefined): number | undefined {
  return raw ? parseBytes(raw.from.replace(/^--/, ''), raw.value) : undefined;
}

export function parseResources(raw: Raw | undefined): ResourceMap {
  if (!raw) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw.value);
  } catch {
    throw new RaysubError('USAGE', `${raw.from} must be JSON such as '{"tpu": 4}'`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new RaysubError('USAGE', `${raw.from} must be a JSON object of numbers`);
  const out: ResourceMap = {};
  for (const [k, v] of Object.entries(parsed)) {
    if (typeof v !== 'number' || v < 0) throw new RaysubError('USAGE', `${raw.from}: "${k}" must be a number >= 0`);
    if (k === 'CPU' || k === 'GPU' || k === 'memory') throw new RaysubError('USAGE', `${raw.from}: use --num-cpus, --num-gpus or --memory for "${k}"`);
    out[k] = v;
  }
  return out;
}

/** "a,b:c" -> ["a", "b", "c"]: commas or colons, as in PATH. */
export function parseList(value: string): string[] {
  return value.split(/[,:]/).map((s) => s.trim()).filter(Boolean);
}

export function oneOf<T extends string>(raw: Raw | undefined, choices: readonly T[], fallback: T): T {
  if (!raw) return fallback;
  if (!(choices as readonly string[]).includes(raw.value)) throw new RaysubError('USAGE', `${raw.from} must be one of ${choices.join(', ')}, got "${raw.value}"`);
  return raw.value as T;
}

export function readPem(file: string, what: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new RaysubError('USAGE', `cannot read ${what} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}
