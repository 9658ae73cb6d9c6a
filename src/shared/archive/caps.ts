/**
 * Limits on what one package may unpack to, and the errors that name them. The same caps are
 * checked by the head when a package is uploaded and by an agent when it unpacks one.
 */
import { RaysubError } from '../errors.js';
import { formatBytes } from '../resources.js';

export interface ArchiveCaps {
  /** Bytes of file content the package may unpack to (hard links count once per name). */
  readonly maxBytes: number;
  /** Files, directories and links the package may hold (implied directories included). */
  readonly maxEntries: number;
}

export const DEFAULT_MAX_UNPACKED_BYTES = 1024 ** 3;
export const DEFAULT_MAX_ENTRIES = 100_000;

/** The longest entry path, link target and file name the checks accept. */
export const MAX_PATH_BYTES = 3072;
export const MAX_LINK_BYTES = 4095;
export const MAX_NAME_BYTES = 255;
export const MAX_DEPTH = 256;
/** Pax and GNU long-name headers are metadata: they are read into memory, so they are small. */
export const MAX_META_BYTES = 1024 * 1024;
/** All metadata entries of one archive together. */
export const MAX_META_TOTAL_BYTES = 16 * 1024 * 1024;
/** Steps spent resolving links in the checked tree before the package is refused as too tangled. */
export const MAX_LINK_STEPS = 4_000_000;
export const MAX_LINK_HOPS = 40;

/**
 * Bytes a `.tar.gz` may inflate to in all: content within its cap, plus per entry a header,
 * padding and room for a metadata entry's header, plus the metadata itself.
 */
export function maxInflatedTar(caps: ArchiveCaps): number {
  return caps.maxBytes + (4 * caps.maxEntries + 32) * 1024 + MAX_META_TOTAL_BYTES;
}

export function invalid(message: string): RaysubError {
  return new RaysubError('INVALID_PACKAGE', message);
}

export function overBytes(caps: ArchiveCaps): RaysubError {
  return invalid(`package unpacks to more than ${formatBytes(caps.maxBytes)}, the limit on unpacked size (--max-package-unpacked-size)`);
}

export function overEntries(caps: ArchiveCaps): RaysubError {
  return invalid(`package holds more than ${caps.maxEntries} entries, the limit on entries (--max-package-entries)`);
}

/** An entry name as it may be shown in a message: quoted, control characters escaped, bounded. */
export function shown(name: string): string {
  return JSON.stringify(name.length > 200 ? `${name.slice(0, 200)}…` : name);
}
