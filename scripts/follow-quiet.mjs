#!/usr/bin/env node
// `npm run follow:quiet [-- SECONDS]`: the long form of the quiet-job test, with every interval at
// its default. Starts a temporary head with its local agent, runs
//   raysub job submit -- python3 -c "import time; time.sleep(SECONDS); print('done')"
// (360 s unless told), and checks that it exits 0 with `done` on stdout and says nothing about
// reaching the head. Prints what it saw and exits 0 only if all of that held.
import { spawn } from 'node:child_process';
import { cli, startHead } from './lib.mjs';

const seconds = Number(process.argv[2] ?? 360);
if (!Number.isFinite(seconds) || seconds < 0) {
  console.error('usage: npm run follow:quiet [-- SECONDS]');
  process.exit(64);
}
const head = await startHead();

let ok = false;
try {
  const code = `import time; time.sleep(${seconds}); print('done')`;
  console.error(`$ raysub job submit -- python3 -c "${code}"`);
  const started = Date.now();
  const submit = spawn(process.execPath, [cli, 'job', 'submit', '--', 'python3', '-c', code], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, RAYSUB_ADDRESS: head.url, RAYSUB_TOKEN: head.token, NO_COLOR: '1' },
  });
  let stdout = '';
  let stderr = '';
  submit.stdout.on('data', (d) => (stdout += d));
  submit.stderr.on('data', (d) => (stderr += d));
  const exit = await new Promise((resolve) => submit.once('exit', (c) => resolve(c ?? 1)));
  const took = ((Date.now() - started) / 1000).toFixed(1);
  const unreachable = /reach|unavailable|retrying|answers again/i.test(stderr);
  console.error(`exit code ${exit} after ${took}s\n--- stdout\n${stdout}--- stderr\n${stderr}---`);
  ok = exit === 0 && stdout === 'done\n' && !unreachable;
  console.error(ok ? 'ok: exit 0, "done", nothing about reaching the head' : 'FAILED: expected exit 0, "done" and nothing about reaching the head');
} catch (err) {
  console.error(`follow:quiet failed: ${err.message}`);
} finally {
  await head.stop();
}
process.exit(ok ? 0 : 1);
