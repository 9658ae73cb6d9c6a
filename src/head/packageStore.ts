import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { archiveKind, inspectArchive } from '../shared/archive.js';
import { RaysubError } from '../shared/errors.js';

/** Names Ray's clients and raysub's packer use; anything else is refused. */
const NAME = /^[A-Za-z0-9_][A-Za-z0-9_.+-]{0,200}\.(zip|whl|tar\.gz)$/;
/** raysub's own packages are named by the SHA-256 of their bytes, which the store verifies. */
const RAYSUB_NAME = /^_raysub_pkg_([0-9a-f]{64})\.tar\.gz$/;

export const PACKAGE_PROTOCOLS = ['gcs'] as const;

export function checkPackageAddress(protocol: string, name: string): void {
  if (!(PACKAGE_PROTOCOLS as readonly string[]).includes(protocol)) {
    throw new RaysubError('INVALID_PACKAGE', `unsupported package protocol "${protocol}"; use gcs`);
  }
  if (!NAME.test(name)) throw new RaysubError('INVALID_PACKAGE', `invalid package name "${name}"`);
}

/**
 * Content-addressed package store on the head's disk (`packages/<name>`). An upload is written to
 * a temporary file, checked, and renamed into place, so a failed or hostile upload leaves nothing.
 */
export class PackageStore {
  private readonly tmpDir: string;

  constructor(
    private readonly dir: string,
    private readonly maxBytes: number,
  ) {
    this.tmpDir = path.join(dir, '.incoming');
    fs.mkdirSync(this.tmpDir, { recursive: true, mode: 0o700 });
    for (const f of fs.readdirSync(this.tmpDir)) fs.rmSync(path.join(this.tmpDir, f), { force: true });
  }

  get limit(): number {
    return this.maxBytes;
  }

  pathOf(name: string): string {
    return path.join(this.dir, name);
  }

  has(name: string): boolean {
    return fs.existsSync(this.pathOf(name));
  }

  size(name: string): number | null {
    try {
      return fs.statSync(this.pathOf(name)).size;
    } catch {
      return null;
    }
  }

  /** Store `body` as `name`. Rejects it (storing nothing) if too large, unsafe, or mislabelled. */
  async put(name: string, body: Readable, declaredLength: number | undefined): Promise<{ size: number; created: boolean }> {
    if (declaredLength !== undefined && declaredLength > this.maxBytes) {
      body.resume();
      throw tooLarge(declaredLength, this.maxBytes);
    }
    const kind = archiveKind(name);
    if (!kind) throw new RaysubError('INVALID_PACKAGE', `invalid package name "${name}"`);
    const tmp = path.join(this.tmpDir, `${process.pid}-${crypto.randomBytes(6).toString('hex')}-${name}`);
    const hash = crypto.createHash('sha256');
    let size = 0;
    try {
      const out = fs.createWriteStream(tmp, { mode: 0o600 });
      try {
        for await (const chunk of body as AsyncIterable<Buffer>) {
          size += chunk.length;
          if (size > this.maxBytes) throw tooLarge(size, this.maxBytes);
          hash.update(chunk);
          if (!out.write(chunk)) await new Promise<void>((r) => out.once('drain', () => r()));
        }
      } finally {
        await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
      }
      const own = RAYSUB_NAME.exec(name);
      if (own && own[1] !== hash.digest('hex')) {
        throw new RaysubError('INVALID_PACKAGE', `package content does not match its name ${name}`);
      }
      await inspectArchive(tmp, kind, this.maxBytes * 16);
      const created = !this.has(name);
      fs.renameSync(tmp, this.pathOf(name));
      return { size, created };
    } finally {
      fs.rmSync(tmp, { force: true });
    }
  }

  remove(name: string): void {
    fs.rmSync(this.pathOf(name), { force: true });
  }
}

function tooLarge(size: number, max: number): RaysubError {
  return new RaysubError('PACKAGE_TOO_LARGE', `package of ${size} bytes is over the head's limit of ${max} bytes`);
}
