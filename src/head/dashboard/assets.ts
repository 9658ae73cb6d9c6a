/**
 * The dashboard's built files (`npm run build` puts them in dist/dashboard), read once into
 * memory when the head starts and served by exact name: no request path ever reaches the file
 * system, so none can leave the folder.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';

export interface Asset {
  body: Buffer;
  gzip: Buffer | null;
  type: string;
  etag: string;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.map': 'application/json',
  '.txt': 'text/plain; charset=utf-8',
};

/** At most this much is read (the dashboard is well under 1 MiB; a stray file is not served). */
const MAX_TOTAL_BYTES = 16 * 1024 * 1024;

/** dist/dashboard, from this module in dist/head/dashboard or (under tests) src/head/dashboard. */
export function defaultAssetDir(): string {
  return path.resolve(import.meta.dirname, '..', '..', '..', 'dist', 'dashboard');
}

export class DashboardAssets {
  private readonly files = new Map<string, Asset>();

  constructor(readonly dir: string) {
    let total = 0;
    const walk = (rel: string): void => {
      let entries: fs.Dirent[];
      try {
        entries = fs.readdirSync(path.join(dir, rel), { withFileTypes: true });
      } catch {
        return;
      }
      for (const e of entries) {
        const name = rel ? `${rel}/${e.name}` : e.name;
        if (e.isDirectory()) walk(name);
        const type = TYPES[path.extname(e.name)];
        if (!e.isFile() || !type) continue;
        const body = fs.readFileSync(path.join(dir, name));
        total += body.length;
        if (total > MAX_TOTAL_BYTES) return;
        const gzip = body.length > 1024 && !type.startsWith('image/png') ? zlib.gzipSync(body, { level: 9 }) : null;
        this.files.set(name, { body, gzip, type, etag: `"${crypto.createHash('sha256').update(body).digest('base64url').slice(0, 22)}"` });
      }
    };
    walk('');
  }

  /** Whether the dashboard was built (index.html exists). */
  get built(): boolean {
    return this.files.has('index.html');
  }

  get(name: string): Asset | undefined {
    return this.files.get(name);
  }
}
