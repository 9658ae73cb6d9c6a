/**
 * Hostile archives for tests, written with Python's tarfile and zipfile (which, unlike raysub's
 * packer, write whatever entries they are given) or byte by byte, and the bombs: gzip and deflate
 * streams of zeros that inflate about a thousand times.
 */
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { request } from 'undici';

export type Spec =
  | { name: string; type: 'file'; data?: string; mode?: number }
  | { name: string; type: 'dir' }
  | { name: string; type: 'symlink' | 'hardlink'; target: string }
  | { name: string; type: 'chardev' | 'fifo' };

const WRITER = String.raw`
import io, json, stat, sys, tarfile, zipfile
out, fmt, specs = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
if fmt == 'tar.gz':
    with tarfile.open(out, 'w:gz', format=tarfile.PAX_FORMAT) as t:
        for s in specs:
            info = tarfile.TarInfo(s['name'])
            kind = s['type']
            if kind == 'file':
                data = s.get('data', '').encode(); info.size = len(data); info.mode = s.get('mode', 0o644)
                t.addfile(info, io.BytesIO(data)); continue
            info.type = {'dir': tarfile.DIRTYPE, 'symlink': tarfile.SYMTYPE, 'hardlink': tarfile.LNKTYPE,
                         'chardev': tarfile.CHRTYPE, 'fifo': tarfile.FIFOTYPE}[kind]
            if kind in ('symlink', 'hardlink'): info.linkname = s['target']
            if kind == 'chardev': info.devmajor, info.devminor = 1, 3
            t.addfile(info)
else:
    with zipfile.ZipFile(out, 'w', zipfile.ZIP_DEFLATED) as z:
        for s in specs:
            kind = s['type']
            name = s['name'] + ('/' if kind == 'dir' and not s['name'].endswith('/') else '')
            info = zipfile.ZipInfo(name)
            mode = {'file': stat.S_IFREG | s.get('mode', 0o644), 'dir': stat.S_IFDIR | 0o755, 'symlink': stat.S_IFLNK | 0o777,
                    'chardev': stat.S_IFCHR | 0o644, 'fifo': stat.S_IFIFO | 0o644}[kind]
            info.external_attr = mode << 16
            z.writestr(info, s.get('data', s.get('target', '')), zipfile.ZIP_DEFLATED)
`;

/** Write an archive holding exactly `specs`, in order. */
export function writeArchive(file: string, specs: readonly Spec[]): string {
  const fmt = file.endsWith('.zip') ? 'zip' : 'tar.gz';
  execFileSync('python3', ['-c', WRITER, file, fmt, JSON.stringify(specs)], { stdio: 'pipe' });
  return file;
}

/** The package name raysub's packer gives these bytes. */
export function contentName(file: string): string {
  const hex = crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
  return `_raysub_pkg_${hex}.${file.endsWith('.zip') ? 'zip' : 'tar.gz'}`;
}

/** A zip with one file whose name holds a NUL byte (Python's zipfile cuts names at NUL: patch the bytes). */
export function zipWithNul(file: string): string {
  writeArchive(file, [{ name: 'okXevil.txt', type: 'file', data: 'owned' }]);
  const bytes = fs.readFileSync(file);
  const marker = Buffer.from('okXevil.txt');
  for (let i = bytes.indexOf(marker); i >= 0; i = bytes.indexOf(marker, i + 1)) bytes[i + 2] = 0;
  fs.writeFileSync(file, bytes);
  return file;
}

/** Compress an archive a second time (a .tar.gz.gz under a .tar.gz name). */
export function gzipAgain(src: string, file: string): string {
  fs.writeFileSync(file, zlib.gzipSync(fs.readFileSync(src)));
  return file;
}

function tarHeader(name: string, size: number): Buffer {
  const h = Buffer.alloc(512, 0);
  h.write(name, 0, 'utf8');
  h.write('0000644\0', 100);
  h.write('0000000\0', 108);
  h.write('0000000\0', 116);
  h.write(size.toString(8).padStart(11, '0') + '\0', 124);
  h.write('00000000000\0', 136);
  h.write('        ', 148);
  h.write('0', 156);
  h.write('ustar\u000000', 257);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148);
  return h;
}

const MiB = 1024 * 1024;

/**
 * A `.tar.gz` of `count` files of `mibEach` MiB of zeros, as concatenated gzip members (one per
 * header, one per MiB of zeros): about a kilobyte per MiB it inflates to.
 */
export function gzipBomb(file: string, count: number, mibEach = 1): string {
  const zeros = zlib.gzipSync(Buffer.alloc(MiB), { level: 9 });
  const parts: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    parts.push(zlib.gzipSync(tarHeader(`zeros/${String(i).padStart(5, '0')}.bin`, mibEach * MiB), { level: 9 }));
    for (let m = 0; m < mibEach; m++) parts.push(zeros);
  }
  parts.push(zlib.gzipSync(Buffer.alloc(1024), { level: 9 }));
  fs.writeFileSync(file, Buffer.concat(parts));
  return file;
}

/** A `.zip` of `count` entries of 1 MiB of zeros each (deflated: about a kilobyte each). */
export function deflateBomb(file: string, count: number): string {
  execFileSync(
    'python3',
    [
      '-c',
      `import sys, zipfile
zeros = bytes(1 << 20)
with zipfile.ZipFile(sys.argv[1], 'w', zipfile.ZIP_DEFLATED, compresslevel=9) as z:
    for i in range(int(sys.argv[2])):
        z.writestr('zeros/%05d.bin' % i, zeros)`,
      file,
      String(count),
    ],
    { stdio: 'pipe' },
  );
  return file;
}

/** Every path under `dir`, relative, sorted (to compare a tree before and after). */
export function listTree(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      out.push(path.relative(dir, p));
      if (e.isDirectory()) walk(p);
    }
  };
  if (fs.existsSync(dir)) walk(dir);
  return out.sort();
}

/** PUT a package through the head's HTTP API; the status and the error's code and message. */
export async function putPackage(head: { url: string; token: string }, name: string, body: Buffer): Promise<{ status: number; code: string | undefined; message: string }> {
  const res = await request(`${head.url}/api/packages/gcs/${name}`, {
    method: 'PUT',
    body,
    headers: { authorization: `Bearer ${head.token}`, 'content-type': 'application/octet-stream' },
  });
  const text = await res.body.text();
  let error: { code?: string; message?: string } = {};
  try {
    error = (JSON.parse(text) as { error?: typeof error }).error ?? {};
  } catch {
    // not JSON
  }
  return { status: res.statusCode, code: error.code, message: error.message ?? text };
}
