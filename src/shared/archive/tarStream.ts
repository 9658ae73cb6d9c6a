/**
 * Reading a `.tar.gz` as a stream with bounded memory: the file is inflated by Node's zlib
 * stream, which honours back-pressure inside a chunk (at most one 16 KiB output chunk at a
 * time), and the tar framing is decoded here, handing each entry's content to a synchronous
 * sink. Only headers are decoded by node-tar's Header and Pax classes; nothing is buffered but
 * one header block and small metadata entries (pax, GNU long names).
 */
import fs from 'node:fs';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import { Header, Pax } from 'tar';
import { invalid, MAX_META_BYTES, MAX_META_TOTAL_BYTES, shown } from './caps.js';
import type { ArchiveEntry, EntryType } from './tree.js';

/** Where an entry's content goes: called synchronously, in order. */
export interface EntrySink {
  write(chunk: Buffer): void;
  end(): void;
}

/** Receives each entry; returns a sink for a file's content (or null to skip it). */
export type EntryVisitor = (entry: ArchiveEntry) => EntrySink | null;

const TYPES: Record<string, EntryType> = {
  File: 'file',
  OldFile: 'file',
  ContiguousFile: 'file',
  Directory: 'dir',
  SymbolicLink: 'symlink',
  Link: 'hardlink',
};
const META = new Set(['ExtendedHeader', 'GlobalExtendedHeader', 'NextFileHasLongPath', 'NextFileHasLongLinkpath', 'OldGnuLongPath']);

function validSize(raw: number | undefined, path: string | undefined): number {
  if (raw === undefined || !Number.isSafeInteger(raw) || raw < 0) throw invalid(`not a valid .tar.gz archive: bad size in the header of ${shown(path ?? '')}`);
  return raw;
}

/** Thrown inside the pipeline to stop reading at the end-of-archive marker. */
class EndOfArchive extends Error {}

class TarDecoder {
  private readonly block = Buffer.alloc(512);
  private fill = 0;
  private remaining = 0;
  private padding = 0;
  private sink: EntrySink | null = null;
  private meta: { type: string; chunks: Buffer[] } | null = null;
  private pax: Pax | undefined;
  private longPath: string | undefined;
  private longLink: string | undefined;
  private inflated = 0;
  private count = 0;
  private metaBytes = 0;
  private metaCount = 0;
  done = false;

  constructor(
    private readonly visit: EntryVisitor,
    /** Bytes the inflated stream may have in all: content, headers and padding. */
    private readonly maxInflated: number,
    private readonly onOverflow: () => Error,
  ) {}

  push(chunk: Buffer): void {
    this.inflated += chunk.length;
    if (this.inflated > this.maxInflated) throw this.onOverflow();
    let off = 0;
    while (off < chunk.length && !this.done) {
      if (this.remaining > 0) {
        const n = Math.min(this.remaining, chunk.length - off);
        const data = chunk.subarray(off, off + n);
        if (this.meta) this.meta.chunks.push(Buffer.from(data));
        else this.sink?.write(data);
        this.remaining -= n;
        off += n;
        if (this.remaining === 0) this.endBody();
      } else if (this.padding > 0) {
        const n = Math.min(this.padding, chunk.length - off);
        this.padding -= n;
        off += n;
      } else {
        const n = Math.min(512 - this.fill, chunk.length - off);
        chunk.copy(this.block, this.fill, off, off + n);
        this.fill += n;
        off += n;
        if (this.fill === 512) {
          this.fill = 0;
          this.header();
        }
      }
    }
  }

  end(): void {
    if (this.done) return;
    if (this.fill !== 0 || this.remaining > 0 || this.padding > 0) throw invalid('not a valid .tar.gz archive: it ends in the middle of an entry');
    if (this.count === 0) throw invalid('not a valid .tar.gz archive: it holds no entries');
  }

  private header(): void {
    // A zero block ends the archive, as it does for GNU tar and Python's tarfile.
    if (this.block.every((b) => b === 0)) {
      this.done = true;
      return;
    }
    const h = new Header(this.block);
    if (!h.cksumValid) throw invalid(`not a valid .tar.gz archive: bad header checksum after ${this.count} entries`);
    const typeName = h.type;
    this.count++;
    if (META.has(typeName)) {
      const metaSize = validSize(h.size, h.path);
      if (metaSize > MAX_META_BYTES) throw invalid(`not a valid .tar.gz archive: a ${typeName} header larger than ${MAX_META_BYTES} bytes`);
      this.metaBytes += metaSize;
      // Each entry may have a pax header and a long name and link; more than that is padding.
      if (this.metaBytes > MAX_META_TOTAL_BYTES || ++this.metaCount > 3 * (this.count - this.metaCount) + 16) {
        throw invalid('not a valid .tar.gz archive: more metadata headers than its entries need');
      }
      this.startBody(metaSize, null, { type: typeName, chunks: [] });
      return;
    }
    const size = validSize(this.pax?.size ?? h.size, h.path);
    const type = TYPES[typeName];
    const path = this.pax?.path ?? this.longPath ?? h.path ?? '';
    if (!type) throw invalid(`entry ${shown(path)} is a ${typeName}, which packages may not hold`);
    const linkpath = this.pax?.linkpath ?? this.longLink ?? h.linkpath;
    this.pax = undefined;
    this.longPath = undefined;
    this.longLink = undefined;
    const bodySize = type === 'dir' ? 0 : size;
    if (type !== 'file' && bodySize > 0) throw invalid(`entry ${shown(path)} is a ${type} with content`);
    const sink = this.visit({ path, type, size: bodySize, linkpath: type === 'symlink' || type === 'hardlink' ? linkpath : undefined, mode: h.mode });
    this.startBody(bodySize, sink, null);
  }

  private startBody(size: number, sink: EntrySink | null, meta: TarDecoder['meta']): void {
    this.sink = sink;
    this.meta = meta;
    this.remaining = size;
    this.padding = (512 - (size % 512)) % 512;
    if (size === 0) this.endBody();
  }

  private endBody(): void {
    const meta = this.meta;
    if (meta) {
      this.meta = null;
      const text = Buffer.concat(meta.chunks).toString('utf8');
      if (meta.type === 'ExtendedHeader') this.pax = Pax.parse(text, this.pax, false);
      else if (meta.type === 'NextFileHasLongPath' || meta.type === 'OldGnuLongPath') this.longPath = text.replace(/\0[^]*$/, '');
      else if (meta.type === 'NextFileHasLongLinkpath') this.longLink = text.replace(/\0[^]*$/, '');
      // Global pax headers carry defaults (times, owners) that a package does not use.
      return;
    }
    const sink = this.sink;
    this.sink = null;
    sink?.end();
  }
}

/** Stream a `.tar.gz`'s entries to `visit`; content never sits in memory beyond one chunk. */
export async function readTarGz(file: string, visit: EntryVisitor, maxInflated: number, onOverflow: () => Error): Promise<void> {
  const decoder = new TarDecoder(visit, maxInflated, onOverflow);
  let first = true;
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      try {
        // A second layer of compression would be inflated by nothing here: refuse it plainly.
        if (first && chunk.length >= 2 && chunk[0] === 0x1f && chunk[1] === 0x8b) throw invalid('not a valid .tar.gz archive: it is compressed twice');
        first = false;
        decoder.push(chunk);
        cb(decoder.done ? new EndOfArchive() : null);
      } catch (err) {
        cb(err as Error);
      }
    },
    final(cb) {
      try {
        decoder.end();
        cb();
      } catch (err) {
        cb(err as Error);
      }
    },
  });
  try {
    await pipeline(fs.createReadStream(file, { highWaterMark: 64 * 1024 }), zlib.createGunzip(), sink);
  } catch (err) {
    if (err instanceof EndOfArchive) return;
    if (err instanceof Error && 'code' in err && typeof err.code === 'string' && err.code.startsWith('Z_')) {
      throw invalid(`not a valid .tar.gz archive: ${err.message}`);
    }
    throw err;
  }
}
