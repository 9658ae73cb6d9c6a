/**
 * Which interpreters a task would run, found the way its shell would find them (its PATH, its
 * working dir, so pyenv's `.python-version` counts), and the environment installers run with.
 */
import fs from 'node:fs';
import path from 'node:path';
import { runTool } from './run.js';

/**
 * What installers inherit from the agent: its PATH and home (so pip and npm read the agent's own
 * configuration files), pip/npm settings, proxies, certificates and compiler flags. Nothing else,
 * so secrets such as the cluster token never reach a package's build scripts.
 */
const INSTALLER_VARS =
  /^(PATH|HOME|USER|LOGNAME|LANG|LANGUAGE|LC_[A-Z]+|TZ|TMPDIR|PYENV_[A-Z_]+|XDG_[A-Z_]+|PIP_[A-Z0-9_]+|UV_[A-Z0-9_]+|npm_config_[A-Za-z0-9_]+|NPM_CONFIG_[A-Z0-9_]+|NODE_EXTRA_CA_CERTS|(HTTP|HTTPS|NO|ALL)_PROXY|(http|https|no|all)_proxy|SSL_CERT_FILE|SSL_CERT_DIR|REQUESTS_CA_BUNDLE|CURL_CA_BUNDLE|CC|CXX|CFLAGS|CXXFLAGS|CPPFLAGS|LDFLAGS|PKG_CONFIG_PATH|MAKEFLAGS)$/;

/**
 * A task's PATH as the agent may follow it to start programs outside the sandbox (probes,
 * installers): only absolute directories outside `jobFiles`, the agent's work dir, where the
 * files jobs uploaded live (their task directories and packages). A job's `python3` or `npm`
 * there would otherwise run with the agent's privileges.
 */
export function hostPath(taskPath: string | undefined, jobFiles: string): string | undefined {
  if (taskPath === undefined) return undefined;
  const root = path.resolve(jobFiles);
  return taskPath
    .split(path.delimiter)
    .filter((d) => path.isAbsolute(d) && !(path.resolve(d) === root || path.resolve(d).startsWith(root + path.sep)))
    .join(path.delimiter);
}

export function installerEnv(agentEnv: Readonly<Record<string, string>>, taskPath: string | undefined): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(agentEnv)) if (INSTALLER_VARS.test(k)) env[k] = v;
  if (taskPath !== undefined) env.PATH = taskPath;
  env.PYTHONUNBUFFERED = '1';
  return env;
}

export interface PythonInfo {
  /** The real interpreter (not a pyenv shim). */
  executable: string;
  version: string;
  hasPip: boolean;
}

const PY_PROBE = 'import sys, json, importlib.util; print(json.dumps([sys.executable, sys.version.split()[0], importlib.util.find_spec("pip") is not None]))';

async function probe(argv: string[], taskEnv: Record<string, string>, cwd: string, signal: AbortSignal): Promise<string | null> {
  // The task's environment (it decides which interpreter), less what would load the job's code
  // (its PATH comes filtered by hostPath from the caller).
  const env = { ...taskEnv };
  delete env.NODE_OPTIONS;
  try {
    const res = await runTool(argv, { cwd, env, signal });
    if (res.code !== 0) return null;
    return res.tail.trim().split('\n').pop() ?? null;
  } catch (err) {
    if (signal.aborted) throw err;
    return null;
  }
}

const probed = new Map<string, PythonInfo>();

/** Where the shell would find `python3`, else `python`, on this PATH. */
function pythonOnPath(searchPath: string | undefined): string | null {
  const dirs = (searchPath ?? '').split(path.delimiter).filter(Boolean);
  for (const name of ['python3', 'python']) {
    for (const dir of dirs) {
      const p = path.join(dir, name);
      try {
        fs.accessSync(p, fs.constants.X_OK);
        return p;
      } catch {
        // not here
      }
    }
  }
  return null;
}

function readOrEmpty(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8').trim();
  } catch {
    return '';
  }
}

/**
 * What decides which interpreter `python3` runs: the file PATH finds (and what it links to), and,
 * for a pyenv shim, PYENV_VERSION, a `.python-version` in the cwd or above, or pyenv's global
 * version. Probing costs a process start (more through a shim), so a task whose inputs match an
 * earlier probe reuses its answer.
 */
function probeKey(env: Record<string, string>, cwd: string): string | null {
  const found = pythonOnPath(env.PATH);
  if (!found) return null;
  let real: string;
  let st: fs.Stats;
  try {
    real = fs.realpathSync(found);
    st = fs.statSync(real);
  } catch {
    return null;
  }
  const local: string[] = [];
  for (let dir = path.resolve(cwd); ; dir = path.dirname(dir)) {
    local.push(readOrEmpty(path.join(dir, '.python-version')));
    if (path.dirname(dir) === dir) break;
  }
  const pyenvRoot = env.PYENV_ROOT ?? '';
  return JSON.stringify([found, real, st.mtimeMs, st.size, env.PYENV_VERSION ?? '', pyenvRoot, pyenvRoot && readOrEmpty(path.join(pyenvRoot, 'version')), local]);
}

/** The interpreter `python3` (else `python`) names for a task with this environment and cwd. */
export async function probePython(env: Record<string, string>, cwd: string, signal: AbortSignal): Promise<PythonInfo> {
  const key = probeKey(env, cwd);
  const known = key ? probed.get(key) : undefined;
  if (known && fs.existsSync(known.executable)) return known;
  for (const name of ['python3', 'python']) {
    // Isolated (-I): nothing of the working dir (the cwd) or the job's PYTHON* variables is loaded.
    const line = await probe([name, '-I', '-c', PY_PROBE], env, cwd, signal);
    if (!line) continue;
    try {
      const [executable, version, hasPip] = JSON.parse(line) as [string, string, boolean];
      if (!executable) continue;
      const info = { executable, version, hasPip };
      if (key) probed.set(key, info);
      return info;
    } catch {
      // not our output (a wrapper printed something): try the next name
    }
  }
  throw new Error('no python3 (or python) on this node\'s PATH to build the env with');
}

export interface NodeInfo {
  version: string;
  /** The native-module ABI: node_modules built for one ABI break on another. */
  abi: string;
  platform: string;
}

export async function probeNode(env: Record<string, string>, cwd: string, signal: AbortSignal): Promise<NodeInfo> {
  const line = await probe(['node', '-p', 'JSON.stringify([process.version, process.versions.modules, process.platform + "-" + process.arch])'], env, cwd, signal);
  if (!line) throw new Error('no node on this node\'s PATH to run the npm job with');
  const [version, abi, platform] = JSON.parse(line) as [string, string, string];
  return { version, abi, platform };
}
