#!/usr/bin/env node
// `npm run demo`: start a temporary head with its local agent, submit jobs/hello-python, stream its
// logs, stop the head, and exit with the job's exit code.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..');
const cli = path.join(root, 'bin', 'raysub');
const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'raysub-demo-'));
const head = spawn(process.execPath, [cli, 'start', '--head', '--port', '0', '--data-dir', dataDir, '--log-level', 'warn'], {
  stdio: ['ignore', 'inherit', 'inherit'],
});

function cleanup() {
  fs.rmSync(dataDir, { recursive: true, force: true });
}

async function waitForHead() {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    try {
      const info = JSON.parse(fs.readFileSync(path.join(dataDir, 'head.json'), 'utf8'));
      if (info.pid === head.pid) return info.url;
    } catch {
      // not yet written
    }
    if (head.exitCode !== null) throw new Error(`the head exited with code ${head.exitCode}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('the head did not start within 60s');
}

let code = 1;
try {
  const url = await waitForHead();
  const token = fs.readFileSync(path.join(dataDir, 'token'), 'utf8').trim();
  const args = [cli, 'job', 'submit', '--working-dir', path.join(root, 'jobs', 'hello-python'), '--', 'python3', 'main.py'];
  console.error(`$ raysub ${args.slice(1).join(' ').replace(root + '/', '')}`);
  const submit = spawn(process.execPath, args, { stdio: 'inherit', env: { ...process.env, RAYSUB_ADDRESS: url, RAYSUB_TOKEN: token } });
  code = await new Promise((resolve) => submit.once('exit', (c) => resolve(c ?? 1)));
} catch (err) {
  console.error(`demo failed: ${err.message}`);
} finally {
  head.kill('SIGTERM');
  await new Promise((r) => (head.exitCode !== null ? r() : head.once('exit', r)));
  cleanup();
}
console.error(`demo finished: the job's exit status is ${code}`);
process.exit(code);
