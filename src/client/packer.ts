/**
 * Packs a working directory into a deterministic `.tar.gz` named by the SHA-256 of its bytes:
 * sorted entries, fixed mtimes and normalised modes, so an unchanged directory always gives the
 * same package and is never uploaded twice.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import type { Ignore } from 'ignore';
import { RaysubError } from '../shared/errors.js';
import { formatBytes } from '../shared/resources.js';

export const DEFAULT_EXCLUDES = ['.git', 'node_modules', '__pycache__', '.venv', 'venv'];
// The SDK's entry exports the packer, so every CLI command loads this module: its libraries are
// loaded on first use, not by commands that never pack (`job list` and friends start faster).
const requireLazily = createRequire(import.meta.url);
let ignoreFactory: (() => Ignore) | undefined;
function ignore(): Ignore {
  ignoreFactory ??= requireLazily('ignore') as () => Ignore;
  return ignoreFactory();
}

const IGNORE_FILES = ['.gitignore', '.raysubignore', '.rayignore'];

export interface PackOptions {
  excludes?: readonly string[];
  maxBytes: number;
  /** Put the directory itself at the archive's root, not only its content (py_modules: `import mod`). */
  includeDirName?: boolean;
}

export interface PackedDir {
  file: string;
  name: string;
  uri: string;
  sha256: string;
  size: number;
  fileCount: number;
  contentBytes: number;
  cleanup(): void;
}

interface Layer {
  base: string; // relative dir ('' for the root)
  ig: Ignore;
}

interface Walked {
  entries: string[];
  sizes: { path: string; size: number }[];
  escaping: string[];
}

function isIgnored(layers: readonly Layer[], rel: string, isDir: boolean): boolean {
  for (const l of layers) {
    const sub = l.base ? path.posix.relative(l.base, rel) : rel;
    if (!sub || sub.startsWith('..')) continue;
    if (l.ig.ignores(isDir ? sub + '/' : sub)) return true;
  }
  return false;
}

function walk(root: string, rel: string, layers: Layer[], out: Walked): void {
  const abs = path.join(root, rel);
  const local = ignore();
  let hasLocal = false;
  for (const f of IGNORE_FILES) {
    const p = path.join(abs, f);
    if (fs.existsSync(p)) {
      local.add(fs.readFileSync(p, 'utf8'));
      hasLocal = true;
    }
  }
  const here = hasLocal ? [...layers, { base: rel, ig: local }] : layers;
  const names = fs.readdirSync(abs).sort();
  for (const name of names) {
    const childRel = rel ? `${rel}/${name}` : name;
    const st = fs.lstatSync(path.join(root, childRel));
    if (isIgnored(here, childRel, st.isDirectory())) continue;
    if (st.isSymbolicLink()) {
      const target = fs.readlinkSync(path.join(root, childRel));
      const resolved = path.posix.normalize(path.posix.join(path.posix.dirname(childRel), target));
      if (path.isAbsolute(target) || resolved === '..' || resolved.startsWith('../')) out.escaping.push(`${childRel} -> ${target}`);
      else out.entries.push(childRel);
    } else if (st.isDirectory()) {
      out.entries.push(childRel);
      walk(root, childRel, here, out);
    } else if (st.isFile()) {
      out.entries.push(childRel);
      out.sizes.push({ path: childRel, size: st.size });
    }
  }
}

/** The files a package of `dir` would hold, after ignore rules (for messages and tests). */
export function listPackageFiles(dir: string, excludes: readonly string[] = []): Walked {
  const root = ignore().add([...DEFAULT_EXCLUDES, ...excludes]);
  const out: Walked = { entries: [], sizes: [], escaping: [] };
  walk(path.resolve(dir), '', [{ base: '', ig: root }], out);
  return out;
}

export async function packDirectory(dir: string, opts: PackOptions): Promise<PackedDir> {
  const root = path.resolve(dir);
  let st: fs.Stats;
  try {
    st = fs.statSync(root);
  } catch {
    throw new RaysubError('USAGE', `working dir ${dir} does not exist`);
  }
  if (!st.isDirectory()) throw new RaysubError('USAGE', `working dir ${dir} is not a directory`);
  const walked = listPackageFiles(root, opts.excludes);
  if (walked.escaping.length) {
    throw new RaysubError(
      'USAGE',
      `symlinks in the working dir point outside it: ${walked.escaping.slice(0, 5).join(', ')}; exclude them in .raysubignore or copy their targets in`,
    );
  }
  const contentBytes = walked.sizes.reduce((a, b) => a + b.size, 0);
  if (contentBytes > opts.maxBytes) {
    const largest = [...walked.sizes].sort((a, b) => b.size - a.size).slice(0, 5);
    throw new RaysubError(
      'PACKAGE_LIMIT_EXCEEDED',
      `working dir ${dir} holds ${formatBytes(contentBytes)}, over the limit of ${formatBytes(opts.maxBytes)}. Largest files: ` +
        largest.map((f) => `${f.path} (${formatBytes(f.size)})`).join(', ') +
        '. Exclude them with .raysubignore or runtime_env.excludes.',
    );
  }
  const tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'raysub-pack-'));
  const file = path.join(tmpDir, 'package.tar.gz');
  const base = path.basename(root);
  const tar = await import('tar');
  await tar.c(
    {
      file,
      cwd: opts.includeDirName ? path.dirname(root) : root,
      gzip: { level: 6 },
      portable: true,
      mtime: new Date(0),
      noDirRecurse: true,
      onWriteEntry(entry) {
        const stat = entry.stat;
        if (!stat) return;
        const mode = stat.mode;
        if (entry.type === 'Directory') stat.mode = (mode & ~0o7777) | 0o755;
        else if (entry.type === 'File') stat.mode = (mode & ~0o7777) | (mode & 0o111 ? 0o755 : 0o644);
      },
    },
    opts.includeDirName ? [base, ...walked.entries.map((e) => `${base}/${e}`)] : walked.entries,
  );
  const bytes = fs.readFileSync(file);
  const sha256 = crypto.createHash('sha256').update(bytes).digest('hex');
  const name = `_raysub_pkg_${sha256}.tar.gz`;
  return {
    file,
    name,
    uri: `gcs://${name}`,
    sha256,
    size: bytes.length,
    fileCount: walked.sizes.length,
    contentBytes,
    cleanup: () => fs.rmSync(tmpDir, { recursive: true, force: true }),
  };
}

/** An existing archive uploaded as it is (Ray accepts local .zip files as a working_dir). */
export function archiveAsPackage(file: string): PackedDir {
  const bytes = fs.readFileSync(file);
  const sha256 = crypto.createHash('sha256').update(bytes).digest('hex');
  const ext = file.endsWith('.zip') ? 'zip' : 'tar.gz';
  // Named by the SHA-256 of its bytes, which the head checks.
  const name = `_raysub_pkg_${sha256}.${ext}`;
  return { file, name, uri: `gcs://${name}`, sha256, size: bytes.length, fileCount: 0, contentBytes: bytes.length, cleanup: () => undefined };
}
