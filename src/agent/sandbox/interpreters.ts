/**
 * Find the real Python and Node interpreters the agent would run, wherever they are installed
 * (a version manager's shim on PATH, a home directory of mode 0700, /opt...), so the sandbox can
 * bind their prefixes read-only and put links to them first on the worker's PATH. A shim is not
 * enough: inside the sandbox it cannot reach its manager, and run as another uid it may silently
 * load a different interpreter's standard library.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

export interface Interpreter {
  /** The command name jobs use (`python3`). */
  name: string;
  /** The real executable, symlinks resolved. */
  exe: string;
  /** Directories that must be visible for it to run (its installation prefixes). */
  prefixes: string[];
  version: string;
}

const PYTHON_PROBE = 'import json,sys,platform;print(json.dumps([sys.executable,[sys.prefix,sys.base_prefix,sys.exec_prefix,sys.base_exec_prefix],platform.python_version()]))';
const NODE_PROBE = 'process.stdout.write(JSON.stringify([process.execPath,[],process.versions.node]))';

function probeArgs(name: string): string[] | null {
  const base = path.basename(name);
  if (/^python[0-9.]*$/.test(base)) return ['-I', '-S', '-c', PYTHON_PROBE];
  if (/^(node|nodejs)[0-9.]*$/.test(base)) return ['-e', NODE_PROBE];
  return null;
}

function run(cmd: string, args: string[], env: Readonly<Record<string, string>>): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { env, timeout: 10_000, encoding: 'utf8' }, (err, stdout) => (err ? reject(new Error(err.message, { cause: err })) : resolve(stdout)));
  });
}

function realDir(p: string): string | null {
  try {
    return fs.realpathSync(p);
  } catch {
    return null;
  }
}

async function probe(name: string, env: Readonly<Record<string, string>>): Promise<Interpreter> {
  const args = probeArgs(name);
  if (!args) throw new Error(`${name}: only Python and Node interpreters can be discovered`);
  const out = await run(name, args, env);
  const [exe, prefixes, version] = JSON.parse(out.trim().split('\n').pop() ?? '') as [string, string[], string];
  const real = fs.realpathSync(exe);
  // Node has no notion of a prefix: it is the directory above its bin/.
  const dirs = prefixes.length > 0 ? prefixes : [path.dirname(path.dirname(real))];
  const resolved = [...dirs, path.dirname(real)].map(realDir).filter((d): d is string => d !== null);
  return { name: path.basename(name), exe: real, prefixes: [...new Set(resolved)], version };
}

/** Probe every configured interpreter; one that is missing is reported, not fatal. */
export async function discoverInterpreters(names: readonly string[], env: Readonly<Record<string, string>>): Promise<{ found: Interpreter[]; problems: string[] }> {
  const results = await Promise.allSettled(names.map((n) => probe(n, env)));
  const found: Interpreter[] = [];
  const problems: string[] = [];
  results.forEach((r, i) => {
    if (r.status === 'fulfilled') found.push(r.value);
    else problems.push(`${names[i]}: ${(r.reason as Error).message.split('\n')[0]}`);
  });
  return { found, problems };
}

/** Link names inside the sandbox: each configured name, and the real file name (`python3.11`). */
export function interpreterLinks(found: readonly Interpreter[]): Map<string, string> {
  const links = new Map<string, string>();
  for (const i of found) links.set(i.name, i.exe);
  for (const i of found) if (!links.has(path.basename(i.exe))) links.set(path.basename(i.exe), i.exe);
  return links;
}
