import crypto from 'node:crypto';

// Ray's alphabet for generated submission ids: no I, l, o, O or 0 to avoid confusion.
const ALPHABET = 'ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz123456789';

function randomString(length: number): string {
  const bytes = crypto.randomBytes(length * 2);
  let out = '';
  for (let i = 0; out.length < length && i < bytes.length; i++) {
    const b = bytes[i] ?? 0;
    if (b < 256 - (256 % ALPHABET.length)) out += ALPHABET[b % ALPHABET.length];
  }
  return out.length === length ? out : randomString(length);
}

export function newSubmissionId(): string {
  return `raysubmit_${randomString(16)}`;
}

export function newNodeId(): string {
  return `node_${crypto.randomBytes(8).toString('hex')}`;
}

export function newToken(): string {
  return crypto.randomBytes(32).toString('base64url');
}

export function taskId(jobId: string, index: number): string {
  return `${jobId}:${index}`;
}

export function parseTaskId(id: string): { jobId: string; index: number } | null {
  const at = id.lastIndexOf(':');
  if (at <= 0) return null;
  const index = Number(id.slice(at + 1));
  return Number.isInteger(index) && index >= 0 ? { jobId: id.slice(0, at), index } : null;
}

/** Canonical JSON (sorted keys) so equal specs hash equally. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

export function sha256(data: string | Buffer): string {
  return crypto.createHash('sha256').update(data).digest('hex');
}
