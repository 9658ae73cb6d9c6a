/**
 * `runtime_env.py_modules` as Ray's client packages it: a local directory becomes a package that
 * includes the directory itself (so `import mod` works from the unpacked root), a local wheel is
 * uploaded under its own filename, and URIs pass through unchanged.
 */
import fs from 'node:fs';
import path from 'node:path';
import { RaysubError } from '../shared/errors.js';
import type { RuntimeEnv } from '../shared/protocol/index.js';
import { archiveAsPackage, packDirectory, type PackedDir } from './packer.js';

/** What uploading needs of a client (RaysubClient has it). */
export interface PackageUploader {
  hasPackage(name: string): Promise<boolean>;
  uploadPackage(name: string, file: string): Promise<void>;
}

const URI = /^[a-z][a-z0-9+.-]*:\/\//i;
/** What the head accepts as a package name (it refuses anything else). */
const WHEEL_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.+-]{0,200}\.whl$/;

export interface PyModuleUpload {
  local: string;
  uri: string;
  uploaded: boolean;
  size: number;
}

function packWheel(file: string): PackedDir {
  const name = path.basename(file);
  if (!WHEEL_NAME.test(name)) throw new RaysubError('USAGE', `py_modules: ${name} is not a valid wheel filename`);
  return { ...archiveAsPackage(file), name, uri: `gcs://${name}` };
}

async function packOne(entry: string, excludes: readonly string[] | undefined, maxBytes: number): Promise<PackedDir> {
  const local = path.resolve(entry);
  let st: fs.Stats;
  try {
    st = fs.statSync(local);
  } catch {
    throw new RaysubError('USAGE', `py_modules: ${entry} does not exist (give a local directory, a .whl file, or a package URI)`);
  }
  if (st.isDirectory()) return packDirectory(local, { excludes, maxBytes, includeDirName: true });
  if (st.isFile() && local.endsWith('.whl')) return packWheel(local);
  throw new RaysubError('USAGE', `py_modules: ${entry} is neither a directory nor a .whl file`);
}

/** Upload every local py_modules entry (unless the head has it) and return the env with their URIs. */
export async function uploadPyModules(
  client: PackageUploader,
  env: RuntimeEnv,
  opts: { maxBytes: number; onUpload?: (u: PyModuleUpload) => void },
): Promise<RuntimeEnv> {
  if (!env.py_modules?.length) return env;
  const uris: string[] = [];
  for (const entry of env.py_modules) {
    if (URI.test(entry)) {
      uris.push(entry);
      continue;
    }
    const packed = await packOne(entry, env.excludes, opts.maxBytes);
    try {
      const exists = await client.hasPackage(packed.name);
      if (!exists) await client.uploadPackage(packed.name, packed.file);
      opts.onUpload?.({ local: entry, uri: packed.uri, uploaded: !exists, size: packed.size });
    } finally {
      packed.cleanup();
    }
    uris.push(packed.uri);
  }
  return { ...env, py_modules: uris };
}
