/**
 * The in-job libraries, copied into the agent's work dir at start so every sandbox can read them:
 * `lib/python/raysub` and `lib/python/ray` (raysub's library under Ray's names, which hands over
 * to a real Ray when the job brings one; both on PYTHONPATH) and `node_modules/raysub` (an
 * ancestor of every task directory, so `import 'raysub'` resolves from a job's own modules
 * without installing anything).
 */
import fs from 'node:fs';
import path from 'node:path';

const here = import.meta.dirname;

export function installRuntimeLibs(workDir: string): { python: string; nodeModules: string; nodeWorker: string } {
  const python = path.join(workDir, 'lib', 'python');
  const nodeModules = path.join(workDir, 'node_modules');
  const nodeDir = path.join(nodeModules, 'raysub');
  fs.rmSync(python, { recursive: true, force: true });
  fs.rmSync(nodeDir, { recursive: true, force: true });
  fs.mkdirSync(python, { recursive: true, mode: 0o755 });
  fs.mkdirSync(nodeDir, { recursive: true, mode: 0o755 });
  for (const pkg of ['raysub', 'ray']) {
    const pySrc = path.resolve(here, '..', '..', 'worker', 'python', pkg);
    fs.cpSync(pySrc, path.join(python, pkg), { recursive: true, filter: (s) => !s.includes('__pycache__') });
  }
  const nodeSrc = path.resolve(here, '..', '..', 'worker', 'node');
  for (const f of fs.existsSync(nodeSrc) ? fs.readdirSync(nodeSrc) : []) if (f.endsWith('.js')) fs.copyFileSync(path.join(nodeSrc, f), path.join(nodeDir, f));
  fs.writeFileSync(path.join(nodeDir, 'package.json'), JSON.stringify({ name: 'raysub', type: 'module', main: './index.js', exports: { '.': './index.js', './worker': './worker.js' } }, null, 2));
  for (const d of [path.join(workDir, 'lib'), python, nodeModules]) fs.chmodSync(d, 0o755);
  chmodTree(python);
  chmodTree(nodeDir);
  return { python, nodeModules, nodeWorker: path.join(nodeDir, 'worker.js') };
}

function chmodTree(dir: string): void {
  fs.chmodSync(dir, 0o755);
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) chmodTree(p);
    else fs.chmodSync(p, 0o644);
  }
}
