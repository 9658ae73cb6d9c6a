/**
 * npm dependencies, py_modules and env_vars end to end, offline: the npm package and the wheel are
 * built by the test, and installers see only local files.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli, startHead, tempDir, workingDir } from './helpers/cluster.js';
import { buildNpmTarball, buildWheel, offlinePipEnv } from './helpers/runtimeEnvFixtures.js';

const NODE_JOB = `
const dep = require('tiny-dep');
console.log('cjs', dep);
import('tiny-dep').then((m) => console.log('esm', m.default));
`;

describe('npm, py_modules and env_vars', { timeout: 180_000 }, () => {
  it('installs a Node job\'s dependencies from its lockfile once and lets the job import them', async () => {
    const npmCache = tempDir('raysub-npm-cache-');
    const dir = workingDir({ 'index.js': NODE_JOB });
    fs.mkdirSync(path.join(dir, 'vendor'));
    const tarball = buildNpmTarball(path.join(dir, 'vendor'), 'tiny-dep', 'tiny says hi');
    const manifest = {
      name: 'npm-job',
      version: '1.0.0',
      private: true,
      dependencies: { 'tiny-dep': `file:vendor/${path.basename(tarball)}` },
      // The job's own lifecycle scripts are not run at install time (its sources are not there).
      scripts: { postinstall: 'exit 3' },
    };
    fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify(manifest, null, 2));
    execFileSync('npm', ['install', '--package-lock-only', '--ignore-scripts', '--offline', '--no-audit', '--no-fund'], {
      cwd: dir,
      env: { ...process.env, npm_config_cache: npmCache },
      stdio: 'ignore',
    });
    expect(fs.existsSync(path.join(dir, 'package-lock.json'))).toBe(true);

    const head = await startHead({ numCpus: 1, env: offlinePipEnv(tempDir('raysub-no-wheels-')) });
    const first = await runCli(['job', 'submit', '--submission-id', 'npm-1', '--working-dir', dir, '--runtime-env-json', '{"npm": true}', '--', 'node', 'index.js'], { env: head.env });
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toContain('cjs tiny says hi');
    expect(first.stdout).toContain('esm tiny says hi');
    expect(first.stdout).toContain('npm ci');

    const second = await runCli(['job', 'submit', '--submission-id', 'npm-2', '--working-dir', dir, '--runtime-env-json', '{"npm": true}', '--', 'node', 'index.js'], { env: head.env });
    expect(second.code, second.stderr).toBe(0);
    expect(second.stdout).toContain('cjs tiny says hi');
    expect(second.stdout).toContain('npm: reusing the cached env');
    expect(second.stdout).not.toContain('npm ci');

    const noLock = workingDir({ 'index.js': NODE_JOB, 'package.json': '{"name": "x", "version": "1.0.0"}' });
    const failed = await runCli(['job', 'submit', '--submission-id', 'npm-nolock', '--working-dir', noLock, '--runtime-env-json', '{"npm": true}', '--', 'node', 'index.js'], { env: head.env });
    expect(failed.code).toBe(1);
    const job = await head.client.getJob('npm-nolock');
    expect(job).toMatchObject({ status: 'FAILED', error_type: 'RUNTIME_ENV_SETUP_FAILURE', raysub: { error_type: 'RUNTIME_ENV_SETUP_FAILED' } });
    expect(job.message).toContain('no package-lock.json');
  });

  it('uploads py_modules (a directory and a wheel) and makes them importable', async () => {
    const mods = tempDir('raysub-mods-');
    fs.mkdirSync(path.join(mods, 'mymod'));
    fs.writeFileSync(path.join(mods, 'mymod', '__init__.py'), 'VALUE = "from a directory"\n');
    fs.writeFileSync(path.join(mods, 'mymod', 'sub.py'), 'X = 42\n');
    const wheel = buildWheel(tempDir('raysub-wheels-'), 'wheelmod', '2.0', 'wheelmod', 'VALUE = "from a wheel"\n');
    const head = await startHead({ numCpus: 1, env: offlinePipEnv(tempDir('raysub-no-wheels-')) });
    const rt = JSON.stringify({ py_modules: [path.join(mods, 'mymod'), wheel], env_vars: { PYTHONPATH: 'extra-path' } });
    const code = 'import sys, mymod, mymod.sub, wheelmod; print(mymod.VALUE, mymod.sub.X, wheelmod.VALUE); print("extra", any(p.endswith("extra-path") for p in sys.path))';

    const first = await runCli(['job', 'submit', '--submission-id', 'mods-1', '--runtime-env-json', rt, '--', 'python3', '-c', code], { env: head.env });
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toContain('from a directory 42 from a wheel');
    expect(first.stdout).toContain('extra True');
    expect(first.stderr).toMatch(/py_modules: .*mymod -> gcs:\/\/_raysub_pkg_[0-9a-f]{64}\.tar\.gz \(uploaded/);
    expect(first.stderr).toContain(`-> gcs://wheelmod-2.0-py3-none-any.whl (uploaded`);
    const job = await head.client.getJob('mods-1');
    expect(job.runtime_env?.py_modules).toEqual([expect.stringMatching(/^gcs:\/\/_raysub_pkg_/), 'gcs://wheelmod-2.0-py3-none-any.whl']);

    const second = await runCli(['job', 'submit', '--submission-id', 'mods-2', '--runtime-env-json', rt, '--', 'python3', '-c', code], { env: head.env });
    expect(second.code, second.stderr).toBe(0);
    expect(second.stdout).toContain('from a directory 42 from a wheel');
    expect(second.stderr).toMatch(/mymod -> .* \(unchanged\)/);
    expect(second.stdout).toContain('py_modules wheelmod-2.0-py3-none-any.whl: reusing the cached env');

    const missing = await runCli(['job', 'submit', '--runtime-env-json', JSON.stringify({ py_modules: [path.join(mods, 'nope')] }), '--', 'true'], { env: head.env });
    expect(missing.code).toBe(64);
    expect(missing.stderr).toContain('does not exist');
  });

  it('expands ${VAR} in env_vars only from what the task is given, never from the agent\'s environment', async () => {
    const head = await startHead({ numCpus: 1, env: { RAYSUB_TEST_WHO: 'world', RAYSUB_TEST_SECRET: 'hidden', RAYSUB_TOKEN: 'agent-secret-token' } });
    const envVars = {
      WHO: 'job',
      GREETING: 'hello ${WHO}!',
      FROM_AGENT: '[${RAYSUB_TEST_WHO}]',
      TOKEN: '[${RAYSUB_TOKEN}]',
      EMPTY: '[${RAYSUB_TEST_UNSET_VARIABLE}]',
      LITERAL: '$RAYSUB_TEST_WHO',
      ID: 'id=${RAYSUB_JOB_ID}',
      PATH: '/opt/job/bin:${PATH}',
      PROTO: '[${constructor}]',
      RAYSUB_JOB_ID: 'hijacked',
    };
    const keys = ['GREETING', 'FROM_AGENT', 'TOKEN', 'EMPTY', 'LITERAL', 'ID', 'PROTO', 'RAYSUB_JOB_ID', 'RAYSUB_TEST_SECRET', 'RAYSUB_TOKEN'];
    const code = `import os; print("|".join(os.environ.get(k, "<unset>") for k in ${JSON.stringify(keys)})); print("PATH=" + os.environ["PATH"])`;
    const res = await runCli(['job', 'submit', '--submission-id', 'vars', '--runtime-env-json', JSON.stringify({ env_vars: envVars }), '--', 'python3', '-c', code], { env: head.env });
    expect(res.code, res.stderr).toBe(0);
    // Only ${VAR} is expanded (as Ray does), from the job's own variables and what raysub gives
    // the task; the agent's other variables (its token included) expand to nothing and never reach
    // the job, and raysub's own cannot be overridden.
    expect(res.stdout).toContain('hello job!|[]|[]|[]|$RAYSUB_TEST_WHO|id=vars|[]|vars|<unset>|<unset>');
    // ${PATH} is the task's own PATH, which the job extends.
    expect(res.stdout).toMatch(/PATH=(?:[^\n]*:)?\/opt\/job\/bin:[^\n]*\/usr\/bin/);
  });
});
