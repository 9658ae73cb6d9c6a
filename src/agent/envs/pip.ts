/**
 * `runtime_env.pip`: a virtualenv per spec hash, created from the interpreter the task would run,
 * inheriting its site-packages as Ray's does, and installed with the agent's pip configuration.
 */
import fs from 'node:fs';
import path from 'node:path';
import { canonicalJson, sha256 } from '../../shared/ids.js';
import type { RuntimeEnv } from '../../shared/protocol/index.js';
import type { BuildContext } from './cache.js';
import type { PythonInfo } from './probe.js';
import { runChecked } from './run.js';

export interface PipSpec {
  /** Requirement lines as given; `-r`/`-c` files are relative to the working dir. */
  install: string[];
  /** The same requirements with every referenced file's content expanded: what the key hashes. */
  expanded: string[];
  options: string[];
  check: boolean;
  pipVersion: string | null;
  /** Some requirement is a local path, so the env depends on the working dir it came from. */
  local: boolean;
  /** The build reads files of the working dir (requirements files or local packages). */
  needsWorkDir: boolean;
}

const INCLUDE = /^(-r|--requirement|-c|--constraint)(?:\s*=\s*|\s+)(.+)$/;
const LOCAL = /^(?:(?:-e|--editable)(?:\s*=\s*|\s+))?(?:\.{1,2}\/|\/|~|file:)|\.(?:whl|zip|tar\.gz|tgz)$/;

/**
 * A path a requirement reads, checked after resolution to stay in the working dir: the agent reads
 * and builds it with its own privileges, so `-r /etc/shadow` or `/root/project` would hand a job
 * host files (through pip's errors or an installed package).
 */
function inWorkDir(ref: string, base: string, workDir: string): string {
  const target = ref.startsWith('file:') ? ref.replace(/^file:(\/\/)?/, '') : ref;
  const bad = (): never => {
    throw new Error(`pip: ${ref} is outside the working dir; requirements and local packages must be files of the working dir`);
  };
  if (target.startsWith('~') || target.includes('\0')) bad();
  const abs = path.resolve(base, target);
  const real = (p: string): string => {
    try {
      return fs.realpathSync(p);
    } catch {
      return path.resolve(p);
    }
  };
  const root = real(workDir);
  const resolved = real(abs);
  if (resolved !== root && !resolved.startsWith(root + path.sep)) bad();
  return abs;
}

/** The path of a local requirement (`./pkg`, `-e ../x`, `/abs`, `file:…`, `x.whl`), or null for a name. */
function localPath(line: string): string | null {
  if (!LOCAL.test(line)) return null;
  return line.replace(/^(?:-e|--editable)(?:\s*=\s*|\s+)/, '').split(/\s+/)[0] ?? null;
}

function checkLocal(line: string, base: string, workDir: string): void {
  const p = localPath(line);
  if (p && !/^[a-z][a-z0-9+.-]*:\/\//i.test(p.replace(/^file:/, ''))) inWorkDir(p, base, workDir);
}

function clean(line: string): string {
  return line.replace(/(^|\s)#.*$/, '').trim();
}

function readRequirements(file: string, seen: Set<string>, out: string[], workDir: string): void {
  const abs = inWorkDir(file, workDir, workDir);
  if (seen.has(abs)) return;
  seen.add(abs);
  let text: string;
  try {
    text = fs.readFileSync(abs, 'utf8');
  } catch {
    throw new Error(`pip: requirements file ${path.basename(abs)} not found in the working dir`);
  }
  out.push(`# ${path.basename(abs)}`);
  for (const raw of text.split(/\r?\n/)) {
    const line = clean(raw);
    if (!line) continue;
    const inc = INCLUDE.exec(line);
    if (inc?.[1] && inc[2]) {
      out.push(`${inc[1]} ${inc[2]}`);
      readRequirements(path.resolve(path.dirname(abs), inc[2]), seen, out, workDir);
    } else {
      checkLocal(line, path.dirname(abs), workDir);
      out.push(line);
    }
  }
}

/** Normalise `runtime_env.pip` against the task's copy of the working dir. */
export function pipSpecOf(pip: NonNullable<RuntimeEnv['pip']>, workDir: string): PipSpec {
  const dict = typeof pip === 'object' && !Array.isArray(pip) ? pip : null;
  const packages = dict ? dict.packages : (pip as string | string[]);
  const install = typeof packages === 'string' ? [`-r ${packages}`] : packages.map(clean).filter(Boolean);
  const expanded: string[] = [];
  const seen = new Set<string>();
  let includes = false;
  for (const line of install) {
    const inc = INCLUDE.exec(line);
    if (inc?.[2]) {
      includes = true;
      readRequirements(path.resolve(workDir, inc[2]), seen, expanded, workDir);
    } else {
      checkLocal(line, workDir, workDir);
      expanded.push(line);
    }
  }
  const options = dict?.pip_install_options ?? [];
  for (const o of options) {
    if (/^(-r|--requirement|-c|--constraint)\b/.test(o)) throw new Error(`pip: ${o} is not a pip_install_options entry; name requirements files in "packages"`);
  }
  const local = [...expanded, ...options].some((l) => LOCAL.test(l));
  return {
    install,
    expanded,
    options,
    check: dict?.pip_check ?? false,
    pipVersion: dict?.pip_version ?? null,
    local,
    needsWorkDir: includes || local,
  };
}

/** The env's key: the normalised spec and the interpreter it is built from. */
export function pipKey(spec: PipSpec, python: PythonInfo, workingDirPackage: string | null): string {
  return sha256(
    canonicalJson({
      v: 1,
      python: [python.executable, python.version],
      requirements: spec.expanded,
      options: spec.options,
      check: spec.check,
      pip_version: spec.pipVersion,
      working_dir: spec.local ? workingDirPackage : null,
    }),
  ).slice(0, 32);
}

/**
 * Build the virtualenv in `ctx.dir`. `cwd` holds a copy of the working dir when the spec reads it
 * (relative paths resolve there, as they would for `pip install` run in the working dir).
 */
export async function buildVenv(ctx: BuildContext, spec: PipSpec, python: PythonInfo, env: Record<string, string>, cwd: string): Promise<void> {
  const run = { cwd, env, signal: ctx.signal, onOutput: ctx.output };
  ctx.output(`[raysub] pip: creating a virtualenv from ${python.executable} (Python ${python.version})\n`);
  // With the base interpreter's pip visible through its site-packages, the env needs no pip of its
  // own: skipping ensurepip saves seconds per build.
  // Isolated (-I), unbuffered (-u): `-m` would otherwise put the cwd, a copy of the job's working
  // dir, first on sys.path, and a module of it named like one venv or pip imports would run here.
  const venvArgs = ['-I', '-m', 'venv', '--system-site-packages', ...(python.hasPip && !spec.pipVersion ? ['--without-pip'] : []), ctx.dir];
  await runChecked('creating the virtualenv', [python.executable, ...venvArgs], run);
  const py = path.join(ctx.dir, 'bin', 'python');
  const pip = [py, '-I', '-u', '-m', 'pip', '--disable-pip-version-check', '--no-input'];
  if (spec.pipVersion) await runChecked('pip install pip', [...pip, 'install', `pip${spec.pipVersion}`], run);
  const reqFile = path.join(ctx.dir, 'raysub-requirements.txt');
  // Files a requirements file names are relative to it, so the working dir's are made absolute.
  const lines = spec.install.map((l) => {
    const inc = INCLUDE.exec(l);
    return inc?.[1] && inc[2] ? `${inc[1]} ${path.resolve(cwd, inc[2])}` : l;
  });
  fs.writeFileSync(reqFile, lines.join('\n') + '\n');
  ctx.output(`[raysub] pip install ${[...spec.install, ...spec.options].join(' ')}\n`);
  await runChecked('pip install', [...pip, 'install', '-r', reqFile, ...spec.options], run);
  if (spec.check) await runChecked('pip check', [...pip, 'check'], run);
}

/** Make `python`, `python3` and the env's scripts the task's own. */
export function activateVenv(env: Record<string, string>, dir: string): void {
  env.VIRTUAL_ENV = dir;
  env.PATH = [path.join(dir, 'bin'), env.PATH].filter(Boolean).join(path.delimiter);
  delete env.PYTHONHOME;
}
