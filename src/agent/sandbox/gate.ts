/**
 * A worker process held at a gate. bwrap is started reading its options from fd 3 (the shell
 * gate reads a word from it): while it blocks there the agent moves it into the task's cgroups,
 * so every process of the task is born inside them, and only then sends the options. The start
 * script reports on fd 4 once the worker is about to run; a sandbox that fails before that is a
 * launch error with its own message, not a job failure.
 *
 * A served gate (raysub-init --serve) keeps fd 4 open for the sandbox's life — raysub-init's
 * lines ("serve", "ok", "exit CODE SIGNAL") arrive there — and takes requests on fd 5.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import type { TaskCgroup } from './taskCgroup.js';
import { READY_FD } from './startScript.js';

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** The lines a served sandbox's raysub-init writes on the ready fd, in order. */
export class Lines {
  private buf = '';
  private readonly queue: string[] = [];
  private readonly waiters: ((line: string | null) => void)[] = [];
  private ended = false;

  constructor(stream: Readable) {
    stream.on('error', () => undefined);
    stream.on('data', (d: Buffer) => {
      this.buf += d.toString();
      for (let i = this.buf.indexOf('\n'); i >= 0; i = this.buf.indexOf('\n')) {
        const line = this.buf.slice(0, i);
        this.buf = this.buf.slice(i + 1);
        const waiter = this.waiters.shift();
        if (waiter) waiter(line);
        else this.queue.push(line);
      }
    });
    stream.once('close', () => {
      this.ended = true;
      for (const waiter of this.waiters.splice(0)) waiter(null);
    });
  }

  /** The next line; null once the sandbox has closed the fd (it ended). */
  next(): Promise<string | null> {
    const line = this.queue.shift();
    if (line !== undefined) return Promise.resolve(line);
    if (this.ended) return Promise.resolve(null);
    return new Promise((resolve) => this.waiters.push(resolve));
  }
}

export interface Served {
  lines: Lines;
  /** raysub-init's request fd: "run\n" starts the next task. */
  control: Writable;
}

export interface Gate {
  child: ChildProcess;
  pid: number;
  /** Set for a served gate. */
  served: Served | null;
  exit: Promise<ExitInfo>;
  /** Resolves once the process is in all its cgroups (a first move may wait for an RCU grace period). */
  joined: Promise<void>;
  /** Send the gate input, then wait for the worker to report it is starting. */
  open(input: string): Promise<void>;
  /** Kill a gate that will not be opened; returns what it printed on stderr (why it failed, if it did). */
  discard(): Promise<string>;
}

const STDIO: SpawnOptions['stdio'] = ['ignore', 'pipe', 'pipe', 'pipe', 'pipe'];
const SERVED_STDIO: SpawnOptions['stdio'] = ['ignore', 'pipe', 'pipe', 'pipe', 'pipe', 'pipe'];

export async function startGate(cmd: string, args: string[], opts: { cwd: string; env: Record<string, string> }, cgroup: TaskCgroup | null, serve = false): Promise<Gate> {
  const child = spawn(cmd, args, { ...opts, detached: true, stdio: serve ? SERVED_STDIO : STDIO });
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
  let served: Served | null = null;
  if (serve) {
    const control = (child.stdio as unknown as (Readable | Writable)[])[5] as Writable;
    control.on('error', () => undefined);
    served = { lines: new Lines(child.stdio[READY_FD] as Readable), control };
  }
  return {
    child,
    pid,
    served,
    exit,
    joined,
    async open(input: string) {
      const gate = child.stdio[3] as Writable;
      // A sandbox that dies before reading its options closes the pipe; ready() reports why.
      gate.on('error', () => undefined);
      gate.end(input);
      if (served) {
        // Its stderr stays held: raysub-init's own messages land there, read if a start fails.
        const line = await served.lines.next();
        if (line !== 'serve') throw new Error((await failure()) || `the sandbox exited before it was ready${line ? ` (it said "${line}")` : ''}`);
      } else if (await ready(child)) stderr.off('readable', hold);
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
