/**
 * Remote package URIs in `working_dir` and `py_modules`, as Ray's runtime envs take them: an
 * archive the agent fetches itself over http(s) (`.zip`, `.tar.gz`, `.tgz`; a `.whl` in py_modules), optionally pinned
 * with a `#sha256=<hex>` fragment. The agent caches each one under a name derived from the URI
 * (and the pin), which the head never accepts for an upload: nobody can plant content under it.
 */
import crypto from 'node:crypto';
import { RaysubError } from './errors.js';

export interface RemotePackage {
  /** The URL fetched (without its fragment). */
  url: string;
  /** The name it is cached under on an agent. */
  name: string;
  archive: 'zip' | 'tar.gz' | 'whl';
  /** A wheel's own file name (pip installs it by that name); null for an archive. */
  wheel: string | null;
  /** The SHA-256 the bytes must have, when the URI pins one. */
  sha256: string | null;
}

/** Ray's remote protocols that raysub's agents do not fetch (they need a cloud SDK and its credentials). */
const UNFETCHED = ['s3', 'gs', 'azure', 'abfss'];

const REMOTE_NAME = /^_raysub_url_[0-9a-f]{64}\.(zip|tar\.gz|whl)$/;
/** PEP 427 file names, as the head checks an uploaded wheel's. */
const WHEEL_FILE = /^[A-Za-z0-9](?:[A-Za-z0-9_+!-]|\.(?!\.)){0,200}\.whl$/;

/** Whether `name` is a remote package's cache name (never a name the head stores). */
export function isRemotePackageName(name: string): boolean {
  return REMOTE_NAME.test(name);
}

/** Longest URI taken (a URL is not a place to carry data). */
const MAX_URI_LENGTH = 4096;

/** What a URL shows in logs and messages: no user, password, query or fragment. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return '(an invalid URL)';
  }
}

function refuse(uri: string, why: string): never {
  throw new RaysubError('INVALID_RUNTIME_ENV', `${redactUrl(uri)}: ${why}`);
}

/**
 * The remote package an `http(s)://` URI names; null for any other scheme. A malformed one is
 * refused (INVALID_RUNTIME_ENV) with the reason: the head checks at submission, the agent again.
 */
export function remotePackageOf(uri: string, field: 'working_dir' | 'py_modules'): RemotePackage | null {
  if (!/^https?:\/\//i.test(uri)) return null;
  if (uri.length > MAX_URI_LENGTH) refuse(uri, `a URI may be at most ${MAX_URI_LENGTH} characters`);
  let u: URL;
  try {
    u = new URL(uri);
  } catch {
    return refuse(uri, 'not a valid URL');
  }
  let sha256: string | null = null;
  if (u.hash !== '') {
    const m = /^#sha256=([0-9a-fA-F]{64})$/.exec(u.hash);
    if (!m?.[1]) refuse(uri, 'the only fragment taken is #sha256=<64 hex digits> (the checksum the archive must have)');
    sha256 = m[1].toLowerCase();
    u.hash = '';
  }
  const p = u.pathname.toLowerCase();
  let wheel: string | null = null;
  if (p.endsWith('.whl')) {
    if (field !== 'py_modules') refuse(uri, `${field}: a wheel is taken only in py_modules`);
    wheel = decodeURIComponent(u.pathname.slice(u.pathname.lastIndexOf('/') + 1));
    if (!WHEEL_FILE.test(wheel)) refuse(uri, "the wheel's file name is not a valid wheel name");
  }
  const archive = wheel ? 'whl' : p.endsWith('.zip') ? 'zip' : p.endsWith('.tar.gz') || p.endsWith('.tgz') ? 'tar.gz' : null;
  if (!archive) refuse(uri, `${field}: a remote package must be a .zip, .tar.gz or .tgz archive${field === 'py_modules' ? ', or a .whl' : ''}`);
  const url = u.toString();
  const key = crypto.createHash('sha256').update(`${url}\n${sha256 ?? ''}`).digest('hex');
  return { url, name: `_raysub_url_${key}.${archive}`, archive, wheel, sha256 };
}

/** The scheme of one of Ray's remote protocols that raysub's agents do not fetch, or null. */
export function unfetchedScheme(uri: string): string | null {
  const m = /^([a-z][a-z0-9+.-]*):\/\//i.exec(uri);
  const scheme = m?.[1]?.toLowerCase();
  return scheme !== undefined && UNFETCHED.includes(scheme) ? scheme : null;
}

/** The message a task's setup fails with for such a URI (Ray's own fails the same way without its SDK). */
export function unfetchedMessage(uri: string, scheme: string): string {
  return `${redactUrl(uri)}: ${scheme}:// packages are not fetched by raysub's agents (they would need the cloud's SDK and credentials on every node); serve the archive over https (a pre-signed URL works), or upload it with the job`;
}
