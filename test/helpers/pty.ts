/**
 * Run the real CLI in a pseudo-terminal, without native addons: python3's `pty` module forks the
 * command on a pty of a fixed size and relays bytes both ways. The test reads everything the
 * command drew and types keys into it.
 */
import { spawn } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { onTestFinished } from 'vitest';
import { cliPath, repoRoot } from './cluster.js';

const DRIVER = `
import fcntl, os, pty, select, signal, struct, sys, termios
cols, rows, argv = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
pid, fd = pty.fork()
if pid == 0:
    fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack('HHHH', rows, cols, 0, 0))
    os.execvp(argv[0], argv)
signal.signal(signal.SIGTERM, lambda *_: os.kill(pid, signal.SIGTERM))
inputs = [fd, 0]
while True:
    try:
        ready, _, _ = select.select(inputs, [], [])
    except InterruptedError:
        continue
    if fd in ready:
        try:
            data = os.read(fd, 65536)
        except OSError:
            data = b''
        if not data:
            break
        os.write(1, data)
    if 0 in ready:
        data = os.read(0, 1024)
        if data:
            os.write(fd, data)
        else:
            inputs.remove(0)
_, status = os.waitpid(pid, 0)
sys.exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status))
`;

export interface PtyProcess {
  /** Everything the command wrote to its terminal so far. */
  output(): string;
  /** Type into the terminal. */
  type(keys: string): void;
  /** The exit code (128 + signal when killed). */
  exited: Promise<number>;
}

/** Run `raysub ARGS` on a terminal of `cols` x `rows`. CI variables are dropped so ink draws live. */
export function runCliInPty(args: string[], opts: { env?: Record<string, string>; cols?: number; rows?: number } = {}): PtyProcess {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && k !== 'CI' && k !== 'CONTINUOUS_INTEGRATION' && k !== 'NO_COLOR') env[k] = v;
  Object.assign(env, { TERM: 'xterm-256color', RAYSUB_DATA_DIR: path.join(os.tmpdir(), 'raysub-no-local-head') }, opts.env);
  const proc = spawn('python3', ['-c', DRIVER, String(opts.cols ?? 100), String(opts.rows ?? 40), process.execPath, cliPath, ...args], {
    cwd: repoRoot,
    env,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout.on('data', (d: Buffer) => (out += d.toString('utf8')));
  proc.stderr.on('data', (d: Buffer) => (out += d.toString('utf8')));
  const exited = new Promise<number>((resolve) => proc.once('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1))));
  onTestFinished(async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }
  });
  return { output: () => out, type: (keys) => proc.stdin.write(keys), exited };
}

/** Whether python3 (with its pty module) is here to drive a terminal. */
export async function ptyAvailable(): Promise<boolean> {
  return new Promise((resolve) => {
    const p = spawn('python3', ['-c', 'import pty, termios, fcntl'], { stdio: 'ignore' });
    p.once('error', () => resolve(false));
    p.once('exit', (code) => resolve(code === 0));
  });
}
