/** One entry stream for both archive formats, with the caps applied while reading. */
import { maxInflatedTar, overBytes, type ArchiveCaps } from './caps.js';
import { readTarGz, type EntryVisitor } from './tarStream.js';
import { readZip } from './zipStream.js';

export type ArchiveKind = 'tar.gz' | 'zip' | 'whl';

export function archiveKind(name: string): ArchiveKind | null {
  if (name.endsWith('.tar.gz') || name.endsWith('.tgz')) return 'tar.gz';
  if (name.endsWith('.zip')) return 'zip';
  if (name.endsWith('.whl')) return 'whl';
  return null;
}

/** Hand every entry of `file` to `visit`, in archive order; throws INVALID_PACKAGE on anything malformed. */
export async function readArchive(file: string, kind: ArchiveKind, caps: ArchiveCaps, visit: EntryVisitor): Promise<void> {
  if (kind === 'tar.gz') await readTarGz(file, visit, maxInflatedTar(caps), () => overBytes(caps));
  else await readZip(file, visit, caps);
}
