/**
 * Working-dir packages: `.tar.gz` from raysub's packer, `.zip` from Ray's clients. Both are
 * checked before they are stored or unpacked: no absolute paths, no `..`, no links that point
 * outside the tree, no device files, and a bound on the unpacked size.
 */
import fs from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import type yauzl from 'yauzl';
import { RaysubError } from './errors.js';

// tar and yauzl are loaded on first use: a head or agent that handles no packages never pays for them.
const loadTar = () => import('tar');
const loadYauzl = async () => (await import('yauzl')).default;

export type ArchiveKind = 'tar.gz' | 'zip' | 'whl';

export function archiveKind(name: string): ArchiveKind | null {
  if (name.endsWith('.tar.gz') || name.endsWith('.tgz')) return 'tar.gz';
  if (name.endsWith('.zip')) return 'zip';
  if (name.endsWith('.whl')) return 'whl';
  return null;
}

export interface ArchiveEntry {
  path: string;
  type: 'file' | 'dir' | 'symlink' | 'hardlink';
  size: number;
  linkpath?: string;
  mode?: number;
}

function invalid(message: string): RaysubError {
  return new RaysubError('INVALID_PACKAGE', message);
}

/** Check one entry's path (and link target) stays inside the archive's root. */
export function checkEntry(entry: ArchiveEntry): void {
  const p = entry.path;
  if (p.includes('\0')) throw invalid(`entry "${p}" has a NUL byte in its name`);
  if (p.startsWith('/') || /^[A-Za-z]:[\\/]/.test(p) || p.startsWith('\\')) throw invalid(`entry "${p}" has an absolute path`);
  const parts = p.split(/[\\/]/);
  if (parts.includes('..')) throw invalid(`entry "${p}" has a ".." component`);
  if (entry.type === 'symlink' || entry.type === 'hardlink') {
    const target = entry.linkpath ?? '';
    if (target.startsWith('/') || /^[A-Za-z]:[\\/]/.test(target)) throw invalid(`link "${p}" points to an absolute path "${target}"`);
    const base = entry.type === 'symlink' ? path.posix.dirname(p.replace(/\\/g, '/')) : '.';
    const resolved = path.posix.normalize(path.posix.join(base, target.replace(/\\/g, '/')));
    if (resolved === '..' || resolved.startsWith('../')) throw invalid(`link "${p}" points outside the package ("${target}")`);
  }
}

function tarType(type: string): ArchiveEntry['type'] | null {
  switch (type) {
    case 'File':
    case 'OldFile':
    case 'ContiguousFile':
      return 'file';
    case 'Directory':
      return 'dir';
    case 'SymbolicLink':
      return 'symlink';
    case 'Link':
      return 'hardlink';
    default:
      return null;
  }
}

async function listTar(file: string): Promise<ArchiveEntry[]> {
  const entries: ArchiveEntry[] = [];
  let bad: RaysubError | null = null;
  const tar = await loadTar();
  try {
    await tar.t({
      file,
      strict: true,
      onReadEntry: (e) => {
        const type = tarType(e.type);
        if (!type) {
          bad ??= invalid(`entry "${e.path}" is a ${e.type}, which packages may not hold`);
          return;
        }
        entries.push({ path: e.path, type, size: e.size ?? 0, linkpath: e.linkpath, mode: e.mode });
      },
    });
  } catch (err) {
    throw invalid(`not a valid .tar.gz archive: ${err instanceof Error ? err.message : String(err)}`);
  }
  const failure = bad as RaysubError | null;
  if (failure) throw failure;
  return entries;
}

async function openZip(file: string): Promise<yauzl.ZipFile> {
  const yauzl = await loadYauzl();
  return new Promise((resolve, reject) => {
    yauzl.open(file, { lazyEntries: true, strictFileNames: false, validateEntrySizes: true }, (err, zip) => {
      if (err || !zip) reject(invalid(`not a valid .zip archive: ${err?.message ?? 'unreadable'}`));
      else resolve(zip);
    });
  });
}

function zipEntryType(e: yauzl.Entry): ArchiveEntry['type'] | null {
  const mode = (e.externalFileAttributes >>> 16) & 0o170000;
  if (mode === 0o120000) return 'symlink';
  if (e.fileName.endsWith('/') || mode === 0o040000) return 'dir';
  if (mode === 0 || mode === 0o100000) return 'file';
  return null;
}

function readZipEntry(zip: yauzl.ZipFile, e: yauzl.Entry): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    zip.openReadStream(e, (err, stream) => {
      if (err || !stream) return reject(invalid(`unreadable entry "${e.fileName}"`));
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('error', reject);
      stream.on('end', () => resolve(Buffer.concat(chunks)));
    });
  });
}

/** Walk a zip's entries lazily; `visit` may read the entry's content. */
async function walkZip(file: string, visit: (zip: yauzl.ZipFile, e: yauzl.Entry, entry: ArchiveEntry) => Promise<void>): Promise<void> {
  const zip = await openZip(file);
  try {
    await new Promise<void>((resolve, reject) => {
      zip.on('error', (err: Error) => reject(invalid(`not a valid .zip archive: ${err.message}`)));
      zip.on('end', () => resolve());
      zip.on('entry', (e: yauzl.Entry) => {
        const type = zipEntryType(e);
        if (!type) return reject(invalid(`entry "${e.fileName}" is not a file, directory or symlink`));
        const entry: ArchiveEntry = { path: e.fileName, type, size: e.uncompressedSize, mode: (e.externalFileAttributes >>> 16) & 0o7777 };
        const run = async (): Promise<void> => {
          if (type === 'symlink') entry.linkpath = (await readZipEntry(zip, e)).toString('utf8');
          checkEntry(entry);
          await visit(zip, e, entry);
        };
        run().then(() => zip.readEntry(), reject);
      });
      zip.readEntry();
    });
  } finally {
    zip.close();
  }
}

/** List and check an archive; throws INVALID_PACKAGE on anything unsafe. */
export async function inspectArchive(file: string, kind: ArchiveKind, maxUnpackedBytes: number): Promise<ArchiveEntry[]> {
  let entries: ArchiveEntry[] = [];
  if (kind === 'tar.gz') {
    entries = await listTar(file);
    entries.forEach(checkEntry);
  } else {
    await walkZip(file, async (_zip, _e, entry) => {
      entries.push(entry);
    });
  }
  const total = entries.reduce((sum, e) => sum + (e.type === 'file' ? e.size : 0), 0);
  if (total > maxUnpackedBytes) throw invalid(`package unpacks to ${total} bytes, over the limit of ${maxUnpackedBytes}`);
  return entries;
}

/** Unpack a checked archive into `dest` (created). Wheels are copied as they are. */
export async function extractArchive(file: string, kind: ArchiveKind, dest: string): Promise<void> {
  fs.mkdirSync(dest, { recursive: true });
  if (kind === 'tar.gz') {
    const tar = await loadTar();
    await tar.x({ file, cwd: dest, strict: true, preservePaths: false, preserveOwner: false });
    return;
  }
  await walkZip(file, async (zip, e, entry) => {
    const target = path.join(dest, entry.path);
    if (entry.type === 'dir') {
      fs.mkdirSync(target, { recursive: true });
      return;
    }
    fs.mkdirSync(path.dirname(target), { recursive: true });
    if (entry.type === 'symlink') {
      fs.symlinkSync(entry.linkpath ?? '', target);
      return;
    }
    await new Promise<void>((resolve, reject) => {
      zip.openReadStream(e, (err, stream) => {
        if (err || !stream) return reject(invalid(`unreadable entry "${e.fileName}"`));
        const mode = entry.mode && entry.mode & 0o111 ? 0o755 : 0o644;
        pipeline(stream, fs.createWriteStream(target, { mode })).then(resolve, reject);
      });
    });
  });
}
