/**
 * Reading a `.zip` (or wheel) entry by entry with bounded memory. yauzl reads the central
 * directory lazily and inflates each entry with Node's zlib stream, checking that no entry
 * inflates past the size it declares; content goes to a synchronous sink chunk by chunk.
 */
import type yauzl from 'yauzl';
import { invalid, MAX_LINK_BYTES, overEntries, shown, type ArchiveCaps } from './caps.js';
import type { EntryVisitor } from './tarStream.js';
import type { EntryType } from './tree.js';

const loadYauzl = async () => (await import('yauzl')).default;

async function openZip(file: string): Promise<yauzl.ZipFile> {
  const lib = await loadYauzl();
  return new Promise((resolve, reject) => {
    lib.open(file, { lazyEntries: true, autoClose: false, strictFileNames: false, validateEntrySizes: true, decodeStrings: true }, (err, zip) => {
      if (err || !zip) reject(invalid(`not a valid .zip archive: ${err?.message ?? 'unreadable'}`));
      else resolve(zip);
    });
  });
}

function entryType(e: yauzl.Entry): EntryType | null {
  const mode = (e.externalFileAttributes >>> 16) & 0o170000;
  if (mode === 0o120000) return 'symlink';
  if (e.fileName.endsWith('/') || mode === 0o040000) return 'dir';
  if (mode === 0 || mode === 0o100000) return 'file';
  return null;
}

/** Pipe one entry's content to `onData`, synchronously per chunk. */
function readEntry(zip: yauzl.ZipFile, e: yauzl.Entry, onData: (chunk: Buffer) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    zip.openReadStream(e, (err, stream) => {
      if (err || !stream) return reject(invalid(`entry ${shown(e.fileName)} cannot be read: ${err?.message ?? 'unreadable'}`));
      stream.on('data', (chunk: Buffer) => {
        try {
          onData(chunk);
        } catch (error) {
          stream.destroy();
          reject(error instanceof Error ? error : new Error(String(error)));
        }
      });
      stream.on('error', (error: Error) => reject(invalid(`entry ${shown(e.fileName)} cannot be read: ${error.message}`)));
      stream.on('end', () => resolve());
    });
  });
}

/** Walk a zip's entries in order, handing each to `visit` and its content to the returned sink. */
export async function readZip(file: string, visit: EntryVisitor, caps: ArchiveCaps): Promise<void> {
  const zip = await openZip(file);
  try {
    if (zip.entryCount > caps.maxEntries) throw overEntries(caps);
    await new Promise<void>((resolve, reject) => {
      zip.on('error', (err: Error) => reject(invalid(`not a valid .zip archive: ${err.message}`)));
      zip.on('end', () => resolve());
      zip.on('entry', (e: yauzl.Entry) => {
        const run = async (): Promise<void> => {
          const type = entryType(e);
          if (!type) throw invalid(`entry ${shown(e.fileName)} is not a file, directory or link, which packages may not hold`);
          if (e.isEncrypted()) throw invalid(`entry ${shown(e.fileName)} is encrypted`);
          const mode = (e.externalFileAttributes >>> 16) & 0o7777;
          let linkpath: string | undefined;
          if (type === 'symlink') {
            if (e.uncompressedSize > MAX_LINK_BYTES) throw invalid(`link ${shown(e.fileName)} has a target longer than ${MAX_LINK_BYTES} bytes`);
            const parts: Buffer[] = [];
            await readEntry(zip, e, (c) => parts.push(c));
            linkpath = Buffer.concat(parts).toString('utf8');
          }
          const size = type === 'file' ? e.uncompressedSize : 0;
          const sink = visit({ path: e.fileName, type, size, linkpath, mode });
          if (type === 'file' && sink) {
            await readEntry(zip, e, (c) => sink.write(c));
            sink.end();
          } else sink?.end();
        };
        run().then(() => zip.readEntry(), reject);
      });
      zip.readEntry();
    });
  } finally {
    zip.close();
  }
}
