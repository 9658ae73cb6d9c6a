/**
 * Runtime envs beyond variables: pip virtualenvs, npm node_modules and py_modules, built once per
 * spec hash into the agent's env cache and leased to the tasks that use them.
 */
import path from 'node:path';
import type { Assignment, RuntimeEnv } from '../../shared/protocol/index.js';
import { redactUrl } from '../../shared/remotePackages.js';
import { fileOp } from '../files/index.js';
import type { EnvCache, Lease } from './cache.js';
import { buildNodeModules, exposeNodeModules, npmKey, npmSpecOf } from './npm.js';
import { activateVenv, buildVenv, pipKey, pipSpecOf } from './pip.js';
import { hostPath, installerEnv, probeNode, probePython, type PythonInfo } from './probe.js';
import { addToPythonPath, installWheel, wheelKey, wheelOf } from './pyModules.js';

export { EnvCache, type CacheUsage } from './cache.js';
export { AbortedError } from './run.js';

/** Where py_modules packages come from: the agent's workspace (fetched and unpacked once, leased while used). */
export interface PackageSource {
  acquireUri(uri: string, field: 'py_modules', signal: AbortSignal): Promise<{ dir: string; release(): void }>;
}

export interface EnvSetup {
  assignment: Assignment;
  runtimeEnv: RuntimeEnv;
  /** The task's environment so far; changed in place (PATH, PYTHONPATH, NODE_PATH, ...). */
  env: Record<string, string>;
  taskDir: string;
  agentEnv: Readonly<Record<string, string>>;
  cache: EnvCache;
  packages: PackageSource;
  signal: AbortSignal;
  output: (text: string) => void;
  /** Leases taken so far; the caller releases them when the task ends (or setup fails). */
  leases: Lease[];
  readOnlyPaths: string[];
}

export function needsEnvSetup(re: RuntimeEnv): boolean {
  return Boolean(re.pip) || Boolean(re.npm) || (re.py_modules?.length ?? 0) > 0;
}

export async function setUpEnvs(s: EnvSetup): Promise<void> {
  const { runtimeEnv: re, env, signal, output } = s;
  // Probes and installers run outside the sandbox: they follow the task's PATH only outside the
  // agent's work dir (the env cache's parent), where the jobs' own files are.
  const hostEnv = { ...env };
  const searchPath = hostPath(env.PATH, path.dirname(s.cache.root));
  if (searchPath !== undefined) hostEnv.PATH = searchPath;
  const install = installerEnv(s.agentEnv, searchPath);
  let python: PythonInfo | null = null;
  const wheels = (re.py_modules ?? []).map(wheelOf);
  if (re.pip || wheels.some((w) => w !== null)) python = await probePython(hostEnv, s.taskDir, signal);

  const moduleDirs: string[] = [];
  for (const uri of re.py_modules ?? []) {
    const pkg = await s.packages.acquireUri(uri, 'py_modules', signal).catch((err: unknown) => {
      if (signal.aborted) throw err;
      throw new Error(`could not fetch py_modules package ${redactUrl(uri)}: ${(err as Error).message}`);
    });
    const wheel = wheelOf(uri);
    // Held until the task ends: the tree is bound into its sandbox.
    s.leases.push({ dir: pkg.dir, built: false, release: () => pkg.release() });
    const unpacked = pkg.dir;
    if (wheel !== null && python) {
      const py = python;
      const w = wheel;
      const lease = await s.cache.acquire('py_modules', wheelKey(w.key, py), { signal, output, label: `py_modules ${w.file}` }, (b) => installWheel(b, unpacked, w.file, py, install));
      s.leases.push(lease);
      moduleDirs.push(lease.dir);
    } else moduleDirs.push(unpacked);
  }
  addToPythonPath(env, moduleDirs);
  s.readOnlyPaths.push(...moduleDirs);

  if (re.pip && python) {
    const py = python;
    const spec = pipSpecOf(re.pip, s.taskDir);
    // A requirements file in a remote working dir: the env is keyed by its URI (as Ray caches by URI).
    const remoteWd = typeof re.working_dir === 'string' && !re.working_dir.startsWith('gcs://') ? re.working_dir : null;
    const key = pipKey(spec, py, s.assignment.job.working_dir_package ?? remoteWd);
    const lease = await s.cache.acquire('pip', key, { signal, output, label: 'pip' }, (b) =>
      withWorkDirCopy(spec.needsWorkDir ? s.taskDir : null, b.dir, (cwd) => buildVenv(b, spec, py, install, cwd)),
    );
    s.leases.push(lease);
    activateVenv(env, lease.dir);
    s.readOnlyPaths.push(lease.dir);
  }

  const npm = re.npm ? npmSpecOf(re.npm, s.taskDir) : null;
  if (npm) {
    const node = await probeNode(hostEnv, s.taskDir, signal);
    const lease = await s.cache.acquire('npm', npmKey(npm, node), { signal, output, label: 'npm' }, (b) => buildNodeModules(b, npm, install));
    s.leases.push(lease);
    exposeNodeModules(env, lease.dir, s.taskDir, output);
    s.readOnlyPaths.push(lease.dir);
  }
}

/**
 * Run a build in a private copy of the working dir: the task that started a shared build may be
 * stopped (and its dir removed) while other tasks still wait for the build.
 */
async function withWorkDirCopy(taskDir: string | null, envDir: string, fn: (cwd: string) => Promise<void>): Promise<void> {
  if (!taskDir) return fn(envDir);
  const copy = `${envDir}.src.tmp`;
  // A working dir may hold tens of thousands of files: copied and removed off the event loop.
  await fileOp({ op: 'remove', path: copy });
  await fileOp({ op: 'copy', src: taskDir, dest: copy, mode: 0o700, maxEntries: Number.MAX_SAFE_INTEGER, skipNames: ['node_modules'] });
  try {
    await fn(copy);
  } finally {
    await fileOp({ op: 'remove', path: copy });
  }
}
