/**
 * A worker process held at a gate. bwrap is started reading its options from fd 3 (the shell
 * gate reads a word from it): while it blocks there the agent moves it into the task's cgroups,
 * so every process of the task is born inside them, and only then sends the options. The start
 * script reports on fd 4 once the worker is about to run; a sandbox that fails before that is a
 * launch error with its own message, not a job failure.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import type { TaskCgroup } from './cgroups.js';
import { READY_FD } from './startScript.js';

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface Gate {
  child: ChildProcess;
  pid: number;
  exit: Promise<ExitInfo>;
  /** Resolves once the process is in all its cgroups (a first move may wait for an RCU grace period). */
  joined: Promise<void>;
  /** Send the gate input, then wait for the worker to report it is starting. */
  open(input: string): Promise<void>;
  /** Kill a gate that will not be opened; returns what it printed on stderr (why it failed, if it did). */
  discard(): Promise<string>;
}

const STDIO: SpawnOptions['stdio'] = ['ignore', 'pipe', 'pipe', 'pipe', 'pipe'];

export async function startGate(cmd: string, args: string[], opts: { cwd: string; env: Record<string, string> }, cgroup: TaskCgroup | null): Promise<Gate> {
  const child = spawn(cmd, args, { ...opts, detached: true, stdio: STDIO });
  const exit = new Promise<ExitInfo>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const pid = await new Promise<number>((resolve, reject) => {
    child.once('error', reject);
    child.once('spawn', () => (child.pid === undefined ? reject(new Error('spawn gave no pid')) : resolve(child.pid)));
  });
  // Until the worker runs, stderr is held in paused mode (a 'readable' listener that reads
  // nothing): Node drains unread output when a child exits, and it may say why the sandbox failed.
  const stderr = child.stderr as Readable;
  const hold = (): void => undefined;
  stderr.on('readable', hold);
  const joined = cgroup?.join(pid) ?? Promise.resolve();
  joined.catch(() => undefined); // reported by whoever awaits it
  const failure = async (): Promise<string> => {
    await exit;
    stderr.off('readable', hold);
    let text = '';
    for await (const chunk of stderr) if (text.length < 4000) text += (chunk as Buffer).toString();
    return text.trim().slice(0, 4000);
  };
  return {
    child,
    pid,
    exit,
    joined,
    async open(input: string) {
      const gate = child.stdio[3] as Writable;
      // A sandbox that dies before reading its options closes the pipe; ready() reports why.
      gate.on('error', () => undefined);
      gate.end(input);
      if (await ready(child)) stderr.off('readable', hold);
      else throw new Error((await failure()) || 'the sandbox exited before the worker started');
    },
    async discard() {
      child.kill('SIGKILL');
      await Promise.allSettled([joined]);
      return failure();
    },
  };
}

/** Wait for the start script's "ok" on the ready fd; false if the sandbox ended first. */
async function ready(child: ChildProcess): Promise<boolean> {
  const fd = child.stdio[READY_FD] as Readable;
  fd.on('error', () => undefined);
  // Resolves on "ok", or on close: bwrap and its init hold this fd until the sandbox ends.
  const up = await new Promise<boolean>((resolve) => {
    let got = '';
    fd.on('data', (d: Buffer) => {
      got += d.toString();
      if (got.includes('ok')) resolve(true);
    });
    fd.once('close', () => resolve(false));
  });
  fd.destroy();
  return up;
}
