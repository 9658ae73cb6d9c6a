/**
 * `runtime_env.py_modules`: packages the client uploaded (a directory with its parent included, so
 * `import mod` works from the unpacked root; or a wheel under its own filename), or remote archives
 * (`http(s)://`, fetched by the agent). Directories are unpacked once per package by the workspace; wheels are installed once (with `pip install
 * --target`, as Ray does) into the env cache. Every resulting directory goes on PYTHONPATH.
 */
import fs from 'node:fs';
import path from 'node:path';
import { canonicalJson, sha256 } from '../../shared/ids.js';
import { remotePackageOf } from '../../shared/remotePackages.js';
import type { BuildContext } from './cache.js';
import type { PythonInfo } from './probe.js';
import { runChecked } from './run.js';

const PACKAGE_URI = /^gcs:\/\/([^/]+)$/;

/**
 * When a py_modules entry is a wheel (uploaded to the head, or remote): its file name in the
 * unpacked package, and the key of its installed env; else null.
 */
export function wheelOf(uri: string): { file: string; key: string } | null {
  const name = PACKAGE_URI.exec(uri)?.[1];
  if (name !== undefined) return name.endsWith('.whl') ? { file: name, key: name } : null;
  const remote = remotePackageOf(uri, 'py_modules');
  return remote?.wheel ? { file: remote.wheel, key: remote.name } : null;
}

export function wheelKey(name: string, python: PythonInfo): string {
  return sha256(canonicalJson({ v: 1, wheel: name, python: [python.executable, python.version] })).slice(0, 32);
}

/** Install the wheel (unpacked by the workspace as `<dir>/<name>`) and its dependencies into `ctx.dir`. */
export async function installWheel(ctx: BuildContext, unpackedDir: string, name: string, python: PythonInfo, env: Record<string, string>): Promise<void> {
  if (!python.hasPip) throw new Error(`py_modules: installing ${name} needs pip in ${python.executable}`);
  // The workspace keeps a wheel as it came, inside a directory named after it.
  const wheel = fs.statSync(unpackedDir).isFile() ? unpackedDir : path.join(unpackedDir, name);
  const argv = [python.executable, '-I', '-u', '-m', 'pip', '--disable-pip-version-check', '--no-input', 'install', '--target', ctx.dir, wheel];
  ctx.output(`[raysub] py_modules: pip install --target <env> ${name}\n`);
  await runChecked(`pip install ${name}`, argv, { cwd: ctx.dir, env, signal: ctx.signal, onOutput: ctx.output });
}

export function addToPythonPath(env: Record<string, string>, dirs: readonly string[]): void {
  if (dirs.length === 0) return;
  env.PYTHONPATH = [...dirs, env.PYTHONPATH].filter(Boolean).join(path.delimiter);
}
