/**
 * raysub's `runtime_env.npm`: the job's dependencies installed with `npm ci` from its lockfile,
 * once per lockfile hash, and shown to each task read-only through a `node_modules` link.
 */
import fs from 'node:fs';
import path from 'node:path';
import { canonicalJson, sha256 } from '../../shared/ids.js';
import type { RuntimeEnv } from '../../shared/protocol/index.js';
import type { BuildContext } from './cache.js';
import type { NodeInfo } from './probe.js';
import { runChecked } from './run.js';

const LOCKFILES = ['npm-shrinkwrap.json', 'package-lock.json'];
const DEP_FIELDS = ['dependencies', 'devDependencies', 'optionalDependencies'];

export interface NpmSpec {
  workDir: string;
  lockfile: string;
  options: string[];
  /** Files `npm ci` reads besides the lockfile: package.json, .npmrc, local `file:` packages. */
  files: string[];
}

/** Local packages (`"dep": "file:vendor/dep.tgz"`) inside the working dir, which `npm ci` must see too. */
function localDependencies(workDir: string, manifest: Record<string, unknown>): string[] {
  const out: string[] = [];
  for (const field of DEP_FIELDS) {
    const deps = manifest[field];
    if (!deps || typeof deps !== 'object') continue;
    for (const spec of Object.values(deps as Record<string, unknown>)) {
      if (typeof spec !== 'string' || !spec.startsWith('file:')) continue;
      const target = spec.slice('file:'.length);
      if (path.isAbsolute(target)) continue; // an absolute path means the same thing from the build dir
      const rel = path.normalize(target);
      if (rel.startsWith('..')) throw new Error(`npm: dependency "${spec}" points outside the working dir`);
      out.push(rel);
    }
  }
  return out;
}

export function npmSpecOf(npm: NonNullable<RuntimeEnv['npm']>, workDir: string): NpmSpec | null {
  if (npm === false) return null;
  const options = typeof npm === 'object' ? (npm.npm_install_options ?? []) : [];
  if (!fs.existsSync(path.join(workDir, 'package.json'))) throw new Error('npm: the working dir has no package.json');
  const lockfile = LOCKFILES.find((f) => fs.existsSync(path.join(workDir, f)));
  if (!lockfile) throw new Error('npm: the working dir has no package-lock.json (or npm-shrinkwrap.json); run `npm install` to create one');
  let manifest: Record<string, unknown>;
  try {
    manifest = JSON.parse(fs.readFileSync(path.join(workDir, 'package.json'), 'utf8')) as Record<string, unknown>;
  } catch (err) {
    throw new Error(`npm: package.json is not valid JSON: ${(err as Error).message}`, { cause: err });
  }
  const files = ['package.json', ...(fs.existsSync(path.join(workDir, '.npmrc')) ? ['.npmrc'] : []), ...localDependencies(workDir, manifest)];
  return { workDir, lockfile, options, files };
}

function hashTree(p: string, rel: string, h: string[]): void {
  const st = fs.lstatSync(p);
  if (st.isDirectory()) {
    for (const name of fs.readdirSync(p).sort()) if (name !== 'node_modules') hashTree(path.join(p, name), `${rel}/${name}`, h);
  } else if (st.isFile()) h.push(`${rel}:${sha256(fs.readFileSync(p))}`);
}

/**
 * The key: the lockfile, local packages and `.npmrc` (they decide what is installed), the install
 * options, and node's ABI and platform (native modules are built for them).
 */
export function npmKey(spec: NpmSpec, node: NodeInfo): string {
  const files: string[] = [];
  for (const f of spec.files) {
    const p = path.join(spec.workDir, f);
    if (!fs.existsSync(p)) throw new Error(`npm: ${f} is referenced by package.json but missing from the working dir`);
    if (f !== 'package.json') hashTree(p, f, files);
  }
  return sha256(
    canonicalJson({ v: 1, lock: sha256(fs.readFileSync(path.join(spec.workDir, spec.lockfile))), files, options: spec.options, abi: node.abi, platform: node.platform }),
  ).slice(0, 32);
}

/**
 * `npm ci` in `ctx.dir`, from copies of what it reads, so the tree is independent of any task dir.
 * The job's own lifecycle scripts are left out (they would build sources that are not there);
 * its dependencies' install scripts run as usual.
 */
export async function buildNodeModules(ctx: BuildContext, spec: NpmSpec, env: Record<string, string>): Promise<void> {
  for (const f of [spec.lockfile, ...spec.files]) {
    const dest = path.join(ctx.dir, f);
    fs.mkdirSync(path.dirname(dest), { recursive: true });
    if (f === 'package.json') {
      const manifest = JSON.parse(fs.readFileSync(path.join(spec.workDir, f), 'utf8')) as Record<string, unknown>;
      delete manifest.scripts;
      fs.writeFileSync(dest, JSON.stringify(manifest, null, 2));
    } else {
      fs.cpSync(path.join(spec.workDir, f), dest, { recursive: true, filter: (src) => path.basename(src) !== 'node_modules' });
    }
  }
  const argv = ['npm', 'ci', '--no-audit', '--no-fund', '--no-update-notifier', ...spec.options];
  ctx.output(`[raysub] ${argv.join(' ')}\n`);
  await runChecked('npm ci', argv, { cwd: ctx.dir, env, signal: ctx.signal, onOutput: ctx.output });
  if (!fs.existsSync(path.join(ctx.dir, 'node_modules'))) fs.mkdirSync(path.join(ctx.dir, 'node_modules'));
}

/** Show the cached tree to the task: a `node_modules` link in its dir, NODE_PATH, and its `.bin` on PATH. */
export function exposeNodeModules(env: Record<string, string>, envDir: string, taskDir: string, output: (text: string) => void): void {
  const modules = path.join(envDir, 'node_modules');
  const link = path.join(taskDir, 'node_modules');
  if (lexists(link)) output('[raysub] npm: the working dir has its own node_modules; the installed one is on NODE_PATH only\n');
  else fs.symlinkSync(modules, link, 'dir');
  env.NODE_PATH = [modules, env.NODE_PATH].filter(Boolean).join(path.delimiter);
  env.PATH = [path.join(modules, '.bin'), env.PATH].filter(Boolean).join(path.delimiter);
}

function lexists(p: string): boolean {
  try {
    fs.lstatSync(p);
    return true;
  } catch {
    return false;
  }
}
