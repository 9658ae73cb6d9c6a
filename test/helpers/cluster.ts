/**
 * Real clusters for tests: a head process (with or without its local agent) on 127.0.0.1 with a
 * random port, agent processes, and the CLI run as a real process. Everything a helper starts is
 * stopped and removed when the test ends.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { onTestFinished } from 'vitest';
import { RaysubClient } from '../../src/client/index.js';

export const repoRoot = path.resolve(import.meta.dirname, '..', '..');
export const cliPath = path.join(repoRoot, 'bin', 'raysub');

/** A temporary directory removed when the test ends. */
export function tempDir(prefix = 'raysub-test-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  onTestFinished(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Poll `fn` until it returns a truthy value (or throw after `timeoutMs`). */
export async function waitFor<T>(fn: () => T | Promise<T>, opts: { timeoutMs?: number; intervalMs?: number; what?: string } = {}): Promise<NonNullable<T>> {
  const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${opts.what ?? 'a condition'}${last instanceof Error ? `: ${last.message}` : ''}`);
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 25));
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export interface ManagedProcess {
  proc: ChildProcess;
  output(): string;
  /** SIGTERM and wait for exit (SIGKILL after 10 s). */
  stop(): Promise<void>;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

function manage(proc: ChildProcess): ManagedProcess {
  let out = '';
  proc.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((resolve) => {
    if (proc.exitCode !== null || proc.signalCode !== null) resolve();
    else proc.once('exit', () => resolve());
  });
  const kill = async (signal: NodeJS.Signals = 'SIGKILL') => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
    await exited;
  };
  const managed: ManagedProcess = {
    proc,
    output: () => out,
    kill,
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
  onTestFinished(() => managed.stop());
  return managed;
}

export interface TestHead extends ManagedProcess {
  url: string;
  token: string;
  /** The CA file clients trust, for a head serving HTTPS. */
  ca?: string;
  dataDir: string;
  pid: number;
  client: RaysubClient;
  /** Environment for running the CLI against this head. */
  env: Record<string, string>;
  /** Start the head again on the same data dir (after stop or kill). */
  restart(): Promise<TestHead>;
}

export interface HeadOptions {
  dataDir?: string;
  /** Fixed port (restarts reuse the first one so agents find the head again). */
  port?: number;
  localAgent?: boolean;
  numCpus?: number;
  numGpus?: number;
  args?: string[];
  env?: Record<string, string>;
  /** A command that runs the head (it must exec it, keeping the pid), e.g. ['prlimit', '--nofile=1024', '--']. */
  prefix?: string[];
  /** Serve HTTPS with this pair ({cert, key} files) and trust `ca` in clients. */
  tls?: { cert: string; key: string; ca: string };
}

export async function startHead(opts: HeadOptions = {}): Promise<TestHead> {
  const dataDir = opts.dataDir ?? tempDir('raysub-head-');
  const args = [cliPath, 'start', '--head', '--port', String(opts.port ?? 0), '--data-dir', dataDir, '--log-level', process.env.RAYSUB_TEST_LOG ?? 'warn'];
  if (opts.localAgent === false) args.push('--no-local-agent');
  if (opts.numCpus !== undefined) args.push('--num-cpus', String(opts.numCpus));
  if (opts.numGpus !== undefined) args.push('--num-gpus', String(opts.numGpus));
  if (opts.tls) args.push('--tls-cert', opts.tls.cert, '--tls-key', opts.tls.key);
  args.push(...(opts.args ?? []));
  const infoFile = path.join(dataDir, 'head.json');
  const [cmd, ...pre] = [...(opts.prefix ?? []), process.execPath];
  const proc = spawn(cmd ?? process.execPath, [...pre, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...opts.env } });
  const managed = manage(proc);
  const info = await waitFor(
    () => {
      if (proc.exitCode !== null) throw new Error(`head exited with ${proc.exitCode}: ${managed.output()}`);
      const i = JSON.parse(fs.readFileSync(infoFile, 'utf8')) as { url: string; pid: number };
      return i.pid === proc.pid ? i : null;
    },
    { what: 'the head to start' },
  );
  const token = fs.readFileSync(path.join(dataDir, 'token'), 'utf8').trim();
  const ca = opts.tls?.ca;
  const client = new RaysubClient({ address: info.url, token, retries: 0, ca: ca ? fs.readFileSync(ca, 'utf8') : undefined });
  onTestFinished(() => client.close());
  if (opts.localAgent !== false) {
    await waitFor(async () => (await client.nodes()).some((n) => n.state === 'ALIVE'), { what: 'the local agent to register' });
  }
  return {
    ...managed,
    url: info.url,
    token,
    ca,
    dataDir,
    pid: info.pid,
    client,
    env: { RAYSUB_ADDRESS: info.url, RAYSUB_TOKEN: token, NO_COLOR: '1', ...(ca ? { RAYSUB_CA: ca } : {}) },
    restart: async () => {
      await managed.stop();
      await waitFor(() => !pidAlive(info.pid), { what: 'the old head to exit' });
      return startHead({ ...opts, dataDir, port: Number(new URL(info.url).port) });
    },
  };
}

export interface AgentOptions {
  name: string;
  numCpus?: number;
  numGpus?: number;
  memory?: string;
  resources?: Record<string, number>;
  args?: string[];
  env?: Record<string, string>;
  /** The agent's work dir (to restart an agent as the same node); a new temporary one by default. */
  workDir?: string;
}

export async function startAgent(head: Pick<TestHead, 'url' | 'token' | 'client'> & { ca?: string }, opts: AgentOptions): Promise<ManagedProcess & { workDir: string }> {
  const workDir = opts.workDir ?? tempDir(`raysub-agent-${opts.name}-`);
  const args = [cliPath, 'start', '--address', head.url, '--node-name', opts.name, '--work-dir', workDir, '--log-level', process.env.RAYSUB_TEST_LOG ?? 'warn'];
  if (opts.numCpus !== undefined) args.push('--num-cpus', String(opts.numCpus));
  args.push('--num-gpus', String(opts.numGpus ?? 0));
  if (opts.memory) args.push('--memory', opts.memory);
  if (opts.resources) args.push('--resources', JSON.stringify(opts.resources));
  args.push(...(opts.args ?? []));
  const env = { ...process.env, RAYSUB_TOKEN: head.token, ...(head.ca ? { RAYSUB_CA: head.ca } : {}), ...opts.env };
  const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
  const managed = manage(proc);
  await waitFor(async () => (await head.client.nodes()).some((n) => n.node_name === opts.name && n.state === 'ALIVE'), {
    what: `agent ${opts.name} to register`,
  });
  return { ...managed, workDir };
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run the real CLI (bin/raysub) to completion. */
export async function runCli(args: string[], opts: { env?: Record<string, string>; cwd?: string; timeoutMs?: number } = {}): Promise<CliResult> {
  const cli = spawnCli(args, opts);
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      void cli.kill('SIGKILL');
      reject(new Error(`raysub ${args.join(' ')} timed out\n${cli.output()}`));
    }, opts.timeoutMs ?? 120_000);
  });
  try {
    return await Promise.race([cli.result, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Start the CLI without waiting for it (for follow/stop tests). */
export function spawnCli(args: string[], opts: { env?: Record<string, string>; cwd?: string } = {}): ManagedProcess & { result: Promise<CliResult> } {
  const proc = spawn(process.execPath, [cliPath, ...args], {
    cwd: opts.cwd ?? repoRoot,
    env: { ...process.env, NO_COLOR: '1', RAYSUB_DATA_DIR: path.join(os.tmpdir(), 'raysub-no-local-head'), ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  proc.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const result = new Promise<CliResult>((resolve) => proc.once('exit', (code, signal) => resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr })));
  const managed = manage(proc);
  return { ...managed, output: () => stdout + stderr, result };
}

/** Write files into a new temporary directory: { 'main.py': '...' }. */
export function workingDir(files: Record<string, string>): string {
  const dir = tempDir('raysub-wd-');
  for (const [name, content] of Object.entries(files)) {
    const p = path.join(dir, name);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    fs.writeFileSync(p, content);
  }
  return dir;
}

export function isAlive(pid: number): boolean {
  return pidAlive(pid);
}

/**
 * Host pids of processes whose command line contains `marker`. Jobs run in their own PID
 * namespace, so the pids a job prints are not the host's: tests mark processes instead
 * (e.g. `sleep 3001`) and look them up here.
 */
export function processesWith(marker: string): number[] {
  const out: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const cmd = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').join(' ');
      if (cmd.includes(marker)) out.push(Number(entry));
    } catch {
      // gone already
    }
  }
  return out;
}
