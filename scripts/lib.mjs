// Shared helpers for benchmark scripts: start a head process, percentiles, machine description.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const root = path.resolve(import.meta.dirname, '..');
export const cli = path.join(root, 'bin', 'raysub');

export function percentile(values, p) {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return NaN;
  const idx = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[idx];
}

export function machine() {
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  return `${os.cpus().length} × ${cpu}, ${(os.totalmem() / 1024 ** 3).toFixed(0)} GiB, Linux ${os.release()}, Node ${process.version}`;
}

/**
 * Start a head (optionally without its local agent) in a temp data dir, or in `dataDir`; returns
 * url, token, stop(). stop() removes the data dir unless called with { keep: true }.
 */
export async function startHead(args = [], env = {}, dir = undefined) {
  const dataDir = dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'raysub-bench-'));
  const proc = spawn(process.execPath, [cli, 'start', '--head', '--port', '0', '--data-dir', dataDir, '--log-level', 'warn', ...args], {
    stdio: ['ignore', 'ignore', 'inherit'],
    env: { ...process.env, ...env },
  });
  const deadline = Date.now() + 60_000;
  let info;
  while (Date.now() < deadline) {
    try {
      info = JSON.parse(fs.readFileSync(path.join(dataDir, 'head.json'), 'utf8'));
      if (info.pid === proc.pid) break;
    } catch {
      // not yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const token = fs.readFileSync(path.join(dataDir, 'token'), 'utf8').trim();
  return {
    url: info.url,
    token,
    dataDir,
    pid: proc.pid,
    async stop({ keep = false } = {}) {
      proc.kill('SIGTERM');
      await new Promise((r) => (proc.exitCode !== null ? r() : proc.once('exit', r)));
      if (!keep) fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Wall time of running a command to completion, in ms. */
export function timeCommand(cmd, args) {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { stdio: 'ignore' });
  if (r.status !== 0) throw new Error(`${cmd} exited with ${r.status}`);
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

/** Start an agent process joining `head`; resolves once it has registered. */
export async function startAgent(head, client, name, args = []) {
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), `raysub-bench-agent-${name}-`));
  const proc = spawn(process.execPath, [cli, 'start', '--address', head.url, '--token', head.token, '--node-name', name, '--work-dir', workDir, '--num-gpus', '0', '--log-level', 'warn', ...args], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const nodes = await client.nodes();
    if (nodes.some((n) => n.node_name === name && n.state === 'ALIVE')) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    proc,
    async stop() {
      proc.kill('SIGTERM');
      await new Promise((r) => (proc.exitCode !== null ? r() : proc.once('exit', r)));
      fs.rmSync(workDir, { recursive: true, force: true });
    },
  };
}

/** Run `count` copies of a command with `parallelism` at a time; resolves with the wall time in ms. */
export async function runPool(cmd, args, count, parallelism) {
  let next = 0;
  const t0 = process.hrtime.bigint();
  const worker = async () => {
    while (next < count) {
      next++;
      await new Promise((resolve, reject) => {
        const p = spawn(cmd, args, { stdio: 'ignore' });
        p.once('error', reject);
        p.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} exited ${code}`))));
      });
    }
  };
  await Promise.all(Array.from({ length: parallelism }, worker));
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

export function rssMiB(pid) {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return kb / 1024;
}
