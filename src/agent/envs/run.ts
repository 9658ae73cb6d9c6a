/**
 * Runs installers (python -m venv, pip, npm) for env builds. Each runs in its own process group so
 * an abort (job stopped, setup timeout) kills the installer and everything it started.
 */
import { spawn } from 'node:child_process';

export interface ToolOptions {
  cwd: string;
  env: Record<string, string>;
  signal: AbortSignal;
  /** Output as it arrives (stdout and stderr interleaved), for the job's log. */
  onOutput?: (text: string) => void;
}

export interface ToolResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The last part of the output, for error messages. */
  tail: string;
}

const TAIL_BYTES = 64 * 1024;
const KILL_GRACE_MS = 2000;

export class AbortedError extends Error {
  constructor() {
    super('aborted');
  }
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
}

export function runTool(argv: readonly string[], opts: ToolOptions): Promise<ToolResult> {
  const [cmd, ...args] = argv;
  if (!cmd) return Promise.reject(new Error('empty command'));
  if (opts.signal.aborted) return Promise.reject(new AbortedError());
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let tail = '';
    const onData = (d: Buffer): void => {
      const text = d.toString('utf8');
      tail = (tail + text).slice(-TAIL_BYTES);
      opts.onOutput?.(text);
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    let killTimer: NodeJS.Timeout | null = null;
    const onAbort = (): void => {
      if (child.pid === undefined) return;
      killGroup(child.pid, 'SIGTERM');
      killTimer = setTimeout(() => child.pid !== undefined && killGroup(child.pid, 'SIGKILL'), KILL_GRACE_MS);
    };
    opts.signal.addEventListener('abort', onAbort, { once: true });
    child.once('error', (err) => {
      opts.signal.removeEventListener('abort', onAbort);
      reject(err);
    });
    // Whatever the installer left behind in its group (build helpers) goes with it; that also
    // closes the pipes they may hold, so 'close' follows.
    child.once('exit', () => child.pid !== undefined && killGroup(child.pid, 'SIGKILL'));
    child.once('close', (code, signal) => {
      opts.signal.removeEventListener('abort', onAbort);
      if (killTimer) clearTimeout(killTimer);
      if (opts.signal.aborted) reject(new AbortedError());
      else resolve({ code, signal, tail });
    });
  });
}

/** The line of an installer's output that says why it failed: its last "ERROR:" line, else its last line. */
export function reasonFrom(tail: string): string {
  const lines = tail
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter(Boolean);
  const error = [...lines].reverse().find((l) => /^(ERROR|npm ERR!|npm error)\b/.test(l));
  return (error ?? lines[lines.length - 1] ?? 'no output').slice(0, 1000);
}

/** Run a tool and throw a readable error when it fails. */
export async function runChecked(what: string, argv: readonly string[], opts: ToolOptions): Promise<ToolResult> {
  let res: ToolResult;
  try {
    res = await runTool(argv, opts);
  } catch (err) {
    if (err instanceof AbortedError) throw err;
    const e = err as NodeJS.ErrnoException;
    throw new Error(`${what}: cannot run ${argv[0] ?? ''}: ${e.code === 'ENOENT' ? 'not found' : e.message}`, { cause: err });
  }
  if (res.code !== 0) {
    const how = res.signal ? `was killed by ${res.signal}` : `failed with exit code ${res.code}`;
    throw new Error(`${what} ${how}: ${reasonFrom(res.tail)}`);
  }
  return res;
}
