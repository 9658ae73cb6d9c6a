/**
 * Package names. A name becomes a file name on the head and on every agent, so it is checked by
 * this schema wherever it enters a process: a fixed alphabet, a bounded length, and one of the
 * naming schemes below, each of which says how the name relates to the package's content.
 */
import { z } from 'zod';

/** How a package's name relates to its content (see docs/security.md, "Packages and archives"). */
export type PackageScheme =
  /** raysub's packer: `_raysub_pkg_<SHA-256 of the bytes>.tar.gz|.zip`. */
  | { kind: 'sha256'; hex: string; archive: 'tar.gz' | 'zip' }
  /** Ray's name for a local archive: `_ray_pkg_<SHA-1 of the bytes>.zip|.tar.gz`. */
  | { kind: 'sha1'; hex: string; archive: 'tar.gz' | 'zip' }
  /** Ray's name for a directory or a single module file: `_ray_pkg_<8-byte content hash>.zip`. */
  | { kind: 'ray-content'; hex: string; archive: 'zip' }
  /** A wheel keeps its own file name, which says nothing checkable about its content. */
  | { kind: 'wheel'; archive: 'whl' };

const SHA256_NAME = /^_raysub_pkg_([0-9a-f]{64})\.(tar\.gz|zip)$/;
const SHA1_NAME = /^_ray_pkg_([0-9a-f]{40})\.(tar\.gz|zip)$/;
const RAY_CONTENT_NAME = /^_ray_pkg_([0-9a-f]{16})\.zip$/;
/** PEP 427 file names: distribution, version, tags; no path separators, no "..". */
const WHEEL_NAME = /^[A-Za-z0-9](?:[A-Za-z0-9_+!-]|\.(?!\.)){0,200}\.whl$/;

/** The scheme of a package name, or null when the name is not one raysub accepts. */
export function packageScheme(name: string): PackageScheme | null {
  let m = SHA256_NAME.exec(name);
  if (m) return { kind: 'sha256', hex: m[1] as string, archive: m[2] as 'tar.gz' | 'zip' };
  m = SHA1_NAME.exec(name);
  if (m) return { kind: 'sha1', hex: m[1] as string, archive: m[2] as 'tar.gz' | 'zip' };
  m = RAY_CONTENT_NAME.exec(name);
  if (m) return { kind: 'ray-content', hex: m[1] as string, archive: 'zip' };
  if (WHEEL_NAME.test(name)) return { kind: 'wheel', archive: 'whl' };
  return null;
}

export const PACKAGE_NAME_RULE =
  'must be _raysub_pkg_<64 hex>.tar.gz|.zip, _ray_pkg_<40 hex>.zip|.tar.gz, _ray_pkg_<16 hex>.zip, or a wheel file name';

export const packageNameSchema = z
  .string()
  .max(220)
  .refine((name) => packageScheme(name) !== null, PACKAGE_NAME_RULE);

/** The package a `gcs://<name>` URI names, or null when the URI is not one. */
export function packageNameOfUri(uri: string | undefined): string | null {
  if (!uri?.startsWith('gcs://')) return null;
  return uri.slice('gcs://'.length);
}
