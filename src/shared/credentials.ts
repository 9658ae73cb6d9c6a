/**
 * Where a client or an agent gets its token and the CA it trusts. A token is read from a file
 * (`--token-file`, RAYSUB_TOKEN_FILE) or the environment (RAYSUB_TOKEN); `--token` still works but
 * puts the token where every user of the machine can read it (`ps`, /proc), so it warns.
 */
import fs from 'node:fs';
import { RaysubError } from './errors.js';

/** One option's raw value and where it came from (for messages). */
export interface Raw {
  value: string;
  from: string;
}

export interface Credentials {
  token: string | undefined;
  /** PEM of the CA(s) to trust for an https head, besides the system's. */
  ca: string | undefined;
  warnings: string[];
}

const MAX_TOKEN_FILE_BYTES = 4096;

/** Read a token file: its first line, trimmed. Warns when others may read it. */
export function readTokenFile(file: string, from: string, warnings: string[]): string {
  let text: string;
  try {
    const st = fs.statSync(file);
    if (!st.isFile()) throw new RaysubError('USAGE', `${from}: ${file} is not a file`);
    if (st.size > MAX_TOKEN_FILE_BYTES) throw new RaysubError('USAGE', `${from}: ${file} is not a token file (larger than ${MAX_TOKEN_FILE_BYTES} bytes)`);
    if ((st.mode & 0o077) !== 0) warnings.push(`the token file ${file} can be read by other users (mode ${(st.mode & 0o777).toString(8)}); chmod 600 it`);
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if (err instanceof RaysubError) throw err;
    throw new RaysubError('USAGE', `cannot read the token file ${file} (${from}): ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const token = text.split('\n')[0]?.trim() ?? '';
  if (!token) throw new RaysubError('USAGE', `the token file ${file} (${from}) is empty`);
  return token;
}

/** Read a CA bundle (PEM); refuses a file that holds no certificate. */
export function readCaFile(raw: Raw): string {
  let pem: string;
  try {
    pem = fs.readFileSync(raw.value, 'utf8');
  } catch (err) {
    throw new RaysubError('USAGE', `cannot read the CA file ${raw.value} (${raw.from}): ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) throw new RaysubError('USAGE', `${raw.from}: ${raw.value} holds no PEM certificate`);
  return pem;
}

/**
 * The token, by precedence: a flag (`--token` or `--token-file`, not both), then the environment
 * (RAYSUB_TOKEN, then RAYSUB_TOKEN_FILE), then the config file's `token-file`.
 */
export function readCredentials(o: { token: Raw | undefined; tokenFile: Raw | undefined; ca: Raw | undefined; missing: string | null }): Credentials {
  const warnings: string[] = [];
  const { token, tokenFile } = o;
  if (token?.from === '--token' && tokenFile?.from === '--token-file') throw new RaysubError('USAGE', 'give --token or --token-file, not both');
  let value: string | undefined;
  if (token?.from === '--token') {
    warnings.push('--token puts the token where every user of this machine can read it (ps, /proc); use --token-file FILE or RAYSUB_TOKEN instead');
    value = token.value;
  } else if (tokenFile?.from === '--token-file') {
    value = readTokenFile(tokenFile.value, tokenFile.from, warnings);
  } else if (token) {
    value = token.value;
  } else if (tokenFile) {
    value = readTokenFile(tokenFile.value, tokenFile.from, warnings);
  }
  if (value === undefined && o.missing) throw new RaysubError('USAGE', o.missing);
  return { token: value, ca: o.ca ? readCaFile({ ...o.ca, value: o.ca.value }) : undefined, warnings };
}
