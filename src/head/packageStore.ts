/**
 * The head's package store (`packages/<name>`). An upload is received into a temporary file,
 * checked — size, the archive's content against the caps and the tree rules, the name against
 * the content — and only then linked into place. An existing package is never replaced: the same
 * content again is a success, other content under a taken name is PACKAGE_CONFLICT.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { archiveKind, inspectArchive, type ArchiveCaps, type ArchiveKind } from '../shared/archive/index.js';
import { RaysubError } from '../shared/errors.js';
import { PACKAGE_NAME_RULE, packageNameSchema, packageScheme, type PackageScheme } from '../shared/protocol/packages.js';
import { storageError } from './logIo.js';
import { receiveFile } from './receiveFile.js';

export const PACKAGE_PROTOCOLS = ['gcs'] as const;

export function checkPackageAddress(protocol: string, name: string): void {
  if (!(PACKAGE_PROTOCOLS as readonly string[]).includes(protocol)) {
    throw new RaysubError('INVALID_PACKAGE', `unsupported package protocol "${protocol}"; use gcs`);
  }
  if (!packageNameSchema.safeParse(name).success) throw new RaysubError('INVALID_PACKAGE', `invalid package name ${JSON.stringify(name.slice(0, 240))}: ${PACKAGE_NAME_RULE}`);
}

export interface PackageStoreOptions {
  /** Bytes an uploaded archive may have. */
  maxBytes: number;
  /** What one package may unpack to. */
  caps: ArchiveCaps;
}

export interface StoredPackage {
  name: string;
  /** Last upload, existence check or job reference (the file's mtime). */
  touchedAt: number;
}

export class PackageStore {
  private readonly tmpDir: string;

  constructor(
    private readonly dir: string,
    private readonly opts: PackageStoreOptions,
  ) {
    this.tmpDir = path.join(dir, '.incoming');
    fs.mkdirSync(this.tmpDir, { recursive: true, mode: 0o700 });
    for (const f of fs.readdirSync(this.tmpDir)) fs.rmSync(path.join(this.tmpDir, f), { force: true });
  }

  get limit(): number {
    return this.opts.maxBytes;
  }

  /** The file of a package; `name` must have passed checkPackageAddress. */
  pathOf(name: string): string {
    return path.join(this.dir, name);
  }

  has(name: string): boolean {
    return packageScheme(name) !== null && fs.existsSync(this.pathOf(name));
  }

  size(name: string): number | null {
    try {
      return fs.statSync(this.pathOf(name)).size;
    } catch {
      return null;
    }
  }

  /** Mark a package as just used: a client that saw it exists is about to submit a job naming it. */
  touch(name: string): void {
    const now = new Date();
    try {
      fs.utimesSync(this.pathOf(name), now, now);
    } catch {
      // gone meanwhile: the client will upload it again
    }
  }

  /** Store `body` as `name`. Refuses it (storing nothing) if too large, unsafe, mislabelled, or conflicting. */
  async put(name: string, body: Readable, declaredLength: number | undefined): Promise<{ size: number; created: boolean }> {
    const scheme = packageScheme(name);
    const kind = archiveKind(name);
    if (!scheme || !kind) throw new RaysubError('INVALID_PACKAGE', `invalid package name "${name}": ${PACKAGE_NAME_RULE}`);
    if (declaredLength !== undefined && declaredLength > this.opts.maxBytes) {
      body.resume();
      throw tooLarge(declaredLength, this.opts.maxBytes);
    }
    const tmp = path.join(this.tmpDir, `${process.pid}-${crypto.randomBytes(6).toString('hex')}-${name}`);
    const sha256 = crypto.createHash('sha256');
    const sha1 = scheme.kind === 'sha1' ? crypto.createHash('sha1') : null;
    let size = 0;
    try {
      await receiveFile(body, tmp, (chunk) => {
        size += chunk.length;
        if (size > this.opts.maxBytes) throw tooLarge(size, this.opts.maxBytes);
        sha256.update(chunk);
        sha1?.update(chunk);
      }).catch((err: unknown) => {
        throw storageError(err, `package ${name}`);
      });
      const bytesHash = sha256.digest('hex');
      await this.verify(name, scheme, kind, tmp, { sha256: bytesHash, sha1: sha1?.digest('hex') ?? null });
      try {
        fs.linkSync(tmp, this.pathOf(name));
        return { size, created: true };
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw storageError(err, `package ${name}`);
      }
      await this.sameAsStored(name, kind, tmp, bytesHash);
      this.touch(name);
      return { size, created: false };
    } finally {
      fs.rmSync(tmp, { force: true });
    }
  }

  /** The archive is safe to unpack within the caps, and its name is what its content says. */
  private async verify(name: string, scheme: PackageScheme, kind: ArchiveKind, file: string, hashes: { sha256: string; sha1: string | null }): Promise<void> {
    const mismatch = (actual: string): RaysubError =>
      new RaysubError('INVALID_PACKAGE', `package content does not match its name ${name}: its content is named ${actual}`);
    if (scheme.kind === 'sha256' && scheme.hex !== hashes.sha256) throw mismatch(`_raysub_pkg_${hashes.sha256}.${scheme.archive}`);
    if (scheme.kind === 'sha1' && scheme.hex !== hashes.sha1) throw mismatch(`_ray_pkg_${hashes.sha1 ?? ''}.${scheme.archive}`);
    const inspection = await inspectArchive(file, kind, this.opts.caps, { rayHash: scheme.kind === 'ray-content' });
    if (scheme.kind === 'ray-content' && !inspection.rayHashes.includes(scheme.hex)) {
      throw new RaysubError(
        'INVALID_PACKAGE',
        `package content does not match its name ${name}: Ray's content hash of this zip is ${inspection.rayHashes[0] ?? 'unknown'}. ` +
          'Ray also hashes directories whose every file its ignore rules leave out, which it does not upload: ' +
          'exclude such a directory itself (e.g. "data/" rather than "data/*") or keep a file in it.',
      );
    }
  }

  /** A second upload under a taken name: the same bytes or the same content is fine, anything else conflicts. */
  private async sameAsStored(name: string, kind: ArchiveKind, file: string, sha256: string): Promise<void> {
    const stored = this.pathOf(name);
    if ((await hashFile(stored)) === sha256) return;
    // Ray's zips of one directory differ in timestamps: compare what they unpack to.
    const [mine, theirs] = await Promise.all([
      inspectArchive(file, kind, this.opts.caps, { digest: true }),
      inspectArchive(stored, kind, this.opts.caps, { digest: true }).catch(() => null),
    ]);
    if (theirs && mine.digest === theirs.digest) return;
    throw new RaysubError('PACKAGE_CONFLICT', `package ${name} already exists with other content; a package is never replaced`);
  }

  /** Every stored package (not uploads in progress). */
  list(): StoredPackage[] {
    const out: StoredPackage[] = [];
    for (const name of fs.readdirSync(this.dir)) {
      if (packageScheme(name) === null) continue;
      try {
        out.push({ name, touchedAt: fs.statSync(this.pathOf(name)).mtimeMs });
      } catch {
        // removed meanwhile
      }
    }
    return out;
  }

  remove(name: string): void {
    fs.rmSync(this.pathOf(name), { force: true });
  }
}

async function hashFile(file: string): Promise<string> {
  const h = crypto.createHash('sha256');
  for await (const chunk of fs.createReadStream(file)) h.update(chunk as Buffer);
  return h.digest('hex');
}

function tooLarge(size: number, max: number): RaysubError {
  return new RaysubError('PACKAGE_TOO_LARGE', `package of ${size} bytes is over the head's limit of ${max} bytes`);
}
