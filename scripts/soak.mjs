// The soak and chaos suite, long form: `npm run soak -- [--duration 30m] [--seed N] [--report FILE]`.
// Runs test/soak.test.ts with the long settings (arrays of 2,000 tasks, retention in minutes) for
// the given time, then prints its figures (also written as JSON to the report file).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { machine, root } from './lib.mjs';

function parseDuration(text) {
  const m = /^(\d+(?:\.\d+)?)(s|m|h)?$/.exec(String(text).trim());
  if (!m) throw new Error(`--duration: expected e.g. 1800, 90s, 30m or 1h, got "${text}"`);
  return Math.round(Number(m[1]) * { s: 1, m: 60, h: 3600 }[m[2] ?? 's']);
}

const args = process.argv.slice(2);
const opts = { duration: '30m', seed: String(Math.floor(Math.random() * 2 ** 31)), report: null };
for (let i = 0; i < args.length; i++) {
  const [flag, inline] = args[i].split('=', 2);
  const value = inline ?? args[++i];
  if (flag === '--duration') opts.duration = value;
  else if (flag === '--seed') opts.seed = value;
  else if (flag === '--report') opts.report = value;
  else {
    console.error(`usage: npm run soak -- [--duration 30m] [--seed N] [--report FILE] (unknown: ${args[i]})`);
    process.exit(2);
  }
}
const seconds = parseDuration(opts.duration);
if (!/^\d+$/.test(opts.seed)) throw new Error(`--seed: expected a whole number, got "${opts.seed}"`);
const report = path.resolve(opts.report ?? path.join(os.tmpdir(), `raysub-soak-${opts.seed}.json`));
const [load1] = os.loadavg();
console.log(`soak: ${seconds}s, seed ${opts.seed}, on ${machine()}, load average ${load1.toFixed(1)}; report in ${report}`);

const child = spawn(path.join(root, 'node_modules', '.bin', 'vitest'), ['run', 'test/soak.test.ts'], {
  cwd: root,
  stdio: 'inherit',
  env: { ...process.env, RAYSUB_SOAK_DURATION_S: String(seconds), RAYSUB_SOAK_SEED: opts.seed, RAYSUB_SOAK_SCALE: 'long', RAYSUB_SOAK_REPORT: report },
});
child.on('exit', (code, signal) => {
  if (fs.existsSync(report)) {
    const { summary } = JSON.parse(fs.readFileSync(report, 'utf8'));
    console.log(`soak figures (seed ${summary.seed}, ${summary.minutes} min): ${JSON.stringify({ jobs: summary.jobs, kills: summary.kills, restarts: summary.restarts, largestQueue: summary.largestQueue, rssMiB: summary.rssMiB, diskMiB: summary.diskMiB })}`);
    console.log(`violations: ${summary.violations.length === 0 ? 'none' : summary.violations.join('\n  ')}`);
  }
  process.exit(code ?? (signal ? 1 : 0));
});
