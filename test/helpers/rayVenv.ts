/**
 * Real Ray 2.58 for side-by-side tests: installed once into a virtualenv under the temp dir from
 * this machine's pip configuration (no retries). When it cannot be installed, tests say why and
 * skip their Ray side.
 */
import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const RAY_VENV = path.join(os.tmpdir(), 'raysub-test-ray-venv');
export const rayPython = path.join(RAY_VENV, 'bin', 'python');
/** Test files run in parallel processes: one installs while the others wait on this lock. */
const LOCK = `${RAY_VENV}.lock`;

export function run(cmd: string, args: string[], env: Record<string, string>, timeoutMs = 120_000, cwd?: string): Promise<{ code: number; out: string; stdout: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { env: { ...process.env, ...env }, timeout: timeoutMs, maxBuffer: 32 * 1024 * 1024, cwd }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, out: stdout + stderr, stdout });
    });
  });
}

let pending: Promise<string | null> | null = null;

/** Make sure the Ray virtualenv exists; resolves to null when ready, else the reason it is not. */
export function ensureRayVenv(): Promise<string | null> {
  pending ??= install();
  return pending;
}

async function install(): Promise<string | null> {
  const ready = (): boolean => {
    try {
      execFileSync(rayPython, ['-c', 'import ray, requests, aiohttp, pydantic'], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  };
  if (ready()) return null;
  for (const deadline = Date.now() + 590_000; ; ) {
    try {
      fs.mkdirSync(LOCK);
      break;
    } catch {
      if (ready()) return null;
      if (Date.now() > deadline) return 'another test process held the Ray install lock too long';
      try {
        // A lock older than any install is a leftover of a killed run.
        if (Date.now() - fs.statSync(LOCK).mtimeMs > 600_000) fs.rmSync(LOCK, { recursive: true, force: true });
      } catch {
        // gone meanwhile
      }
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
  if (ready()) {
    fs.rmSync(LOCK, { recursive: true, force: true });
    return null;
  }
  let reason: string | null = null;
  try {
    execFileSync('python3', ['-m', 'venv', RAY_VENV], { stdio: 'pipe' });
    const pip = await run(path.join(RAY_VENV, 'bin', 'pip'), ['install', '--retries', '0', '--timeout', '20', 'ray', 'requests', 'aiohttp', 'pydantic'], { PIP_RETRIES: '0' }, 480_000);
    if (pip.code !== 0) reason = `pip could not install ray: ${pip.out.trim().split('\n').slice(-2).join(' ')}`;
    else if (!ready()) reason = 'ray installed but cannot be imported';
  } catch (err) {
    reason = `cannot create a virtualenv: ${(err as Error).message}`;
  } finally {
    fs.rmSync(LOCK, { recursive: true, force: true });
  }
  return reason;
}
