/**
 * The release: `npm pack` gives a package that `npm install -g` installs in a clean prefix, and
 * the installed `raysub` runs the quick start (a head with its local agent, the hello-python job).
 * The install fetches the dependencies from the npm registry (the local cache first) and builds
 * better-sqlite3 and raysub-init as a user's install would: it takes minutes on a loaded machine,
 * and is skipped, saying why, where the registry cannot be reached.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { repoRoot, tempDir } from './helpers/cluster.js';

const pkg = JSON.parse(fs.readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as { version: string; scripts: Record<string, string>; files: string[] };

function run(cmd: string, args: string[], opts: { cwd?: string; env?: Record<string, string>; timeoutMs?: number } = {}) {
  const r = spawnSync(cmd, args, { cwd: opts.cwd, env: { ...process.env, NO_COLOR: '1', ...opts.env }, encoding: 'utf8', timeout: opts.timeoutMs ?? 60_000 });
  return { code: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '', error: r.error };
}

function registryReachable(): string | null {
  if (run('npm', ['--version']).error) return 'npm is not on PATH';
  const ping = run('npm', ['ping'], { timeoutMs: 20_000 });
  return ping.code === 0 ? null : `the npm registry does not answer (npm ping: ${(ping.stderr || String(ping.error)).trim().split('\n').at(-1)})`;
}

const skipWhy = registryReachable();
if (skipWhy) console.warn(`release.test.ts skipped: ${skipWhy}`);

describe('release', () => {
  it('packs dist/ (built by prepack), sources for raysub-init, LICENSE; no tests or TypeScript sources', () => {
    expect(pkg.scripts.prepack).toMatch(/npm run .*build/);
    expect(pkg.scripts.postinstall).toBe('node scripts/build-native.mjs');
    expect(fs.readFileSync(path.join(repoRoot, 'LICENSE'), 'utf8')).toMatch(/Apache License\s+Version 2\.0, January 2004/);
    // The suite has built dist/ already: packing without scripts does not rebuild it under other tests.
    const listed = run('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: repoRoot });
    expect(listed.code, listed.stderr).toBe(0);
    const files = (JSON.parse(listed.stdout) as { files: { path: string }[] }[])[0]?.files.map((f) => f.path) ?? [];
    for (const f of ['bin/raysub', 'dist/cli/main.js', 'dist/head/index.js', 'dist/dashboard/index.html', 'native/raysub-init.c', 'scripts/build-native.mjs', 'LICENSE', 'README.md', 'jobs/hello-python/main.py']) {
      expect(files, f).toContain(f);
    }
    expect(files.filter((f) => /^(src|test|node_modules)\/|^dist\/native\//.test(f))).toEqual([]);
  });

  it.skipIf(skipWhy !== null)('npm install -g of the tarball in a clean prefix: raysub --version and the quick-start job work', { timeout: 900_000 }, () => {
    const dir = tempDir('raysub-release-');
    onTestFinished(() => fs.rmSync(dir, { recursive: true, force: true }));
    const packed = run('npm', ['pack', '--ignore-scripts', '--pack-destination', dir], { cwd: repoRoot });
    expect(packed.code, packed.stderr).toBe(0);
    const tgz = path.join(dir, `raysub-${pkg.version}.tgz`);
    expect(fs.existsSync(tgz)).toBe(true);

    const prefix = path.join(dir, 'prefix');
    const clean = path.join(dir, 'elsewhere');
    fs.mkdirSync(clean);
    const installed = run('npm', ['install', '-g', '--prefix', prefix, '--prefer-offline', '--no-audit', '--no-fund', tgz], { cwd: clean, timeoutMs: 840_000 });
    expect(installed.code, installed.stderr.slice(-3000)).toBe(0);
    const raysub = path.join(prefix, 'bin', 'raysub');
    const version = run(raysub, ['--version'], { cwd: clean });
    expect(version).toMatchObject({ code: 0, stdout: `${pkg.version}\n` });
    const init = path.join(prefix, 'lib', 'node_modules', 'raysub', 'dist', 'native', 'raysub-init');
    const compiler = ['cc', 'gcc', 'clang', 'musl-gcc'].some((cc) => !run(cc, ['--version']).error);
    if (compiler) expect(fs.existsSync(init), 'raysub-init built at install').toBe(true);
    else console.warn('no C compiler here: raysub-init was not built at install (workers start through setpriv and sh)');

    // The quick start, with the installed CLI only.
    const env = { RAYSUB_DATA_DIR: path.join(dir, 'data') };
    const started = run(raysub, ['start', '--head', '--detach', '--port', '0', '--num-cpus', '1'], { cwd: clean, env });
    onTestFinished(() => void run(raysub, ['stop', '--timeout', '10'], { cwd: clean, env }));
    expect(started.code, started.stderr).toBe(0);
    const job = path.join(prefix, 'lib', 'node_modules', 'raysub', 'jobs', 'hello-python');
    const submitted = run(raysub, ['job', 'submit', '--working-dir', job, '--', 'python3', 'main.py'], { cwd: clean, env, timeoutMs: 180_000 });
    expect(submitted.code, submitted.stderr).toBe(0);
    expect(submitted.stdout).toMatch(/pi ~ 3\.1\d+ \(error/);
    expect(submitted.stderr).toMatch(/succeeded/);
    const stopped = run(raysub, ['stop'], { cwd: clean, env });
    expect(stopped.code, stopped.stderr).toBe(0);
  });
});
