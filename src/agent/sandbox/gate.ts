/**
 * A worker process held at a gate. bwrap is started reading its options from fd 3 (the shell
 * gate reads a word from it): while it blocks there the agent moves it into the task's cgroups,
 * so every process of the task is born inside them, and only then sends the options. The start
 * script reports on fd 4 once the worker is about to run; a sandbox that fails before that is a
 * launch error with its own message, not a job failure.
 *
 * A served gate (raysub-init --serve) keeps fd 4 open for the sandbox's life — raysub-init's
 * lines ("serve", "ok", "exit CODE SIGNAL") arrive there — and takes requests on fd 5. A gate
 * whose worker starts without raysub-init has fd 6, from which bwrap reads the seccomp filter
 * (`--seccomp 6` among the options), written when the gate opens.
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

/** Where bwrap reads the seccomp filter from, on a gate without raysub-init. */
export const SECCOMP_FD = 6;

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
  /** Send the gate input (and the seccomp filter, on a gate with a filter fd), then wait for the worker to report it is starting. */
  open(input: string, seccomp?: Buffer | null): Promise<void>;
  /** Kill a gate that will not be opened; returns what it printed on stderr (why it failed, if it did). */
  discard(): Promise<string>;
}

const STDIO: SpawnOptions['stdio'] = ['ignore', 'pipe', 'pipe', 'pipe', 'pipe'];
const SERVED_STDIO: SpawnOptions['stdio'] = ['ignore', 'pipe', 'pipe', 'pipe', 'pipe', 'pipe'];
const FILTER_STDIO: SpawnOptions['stdio'] = ['ignore', 'pipe', 'pipe', 'pipe', 'pipe', 'ignore', 'pipe'];

export interface GateOptions {
  cwd: string;
  env: Record<string, string>;
  /** Moved into these cgroups before it is opened. */
  cgroup: TaskCgroup | null;
  /** raysub-init --serve: a served sandbox. */
  serve?: boolean;
  /** bwrap reads a seccomp filter from SECCOMP_FD. */
  filterFd?: boolean;
}

export async function startGate(cmd: string, args: string[], o: GateOptions): Promise<Gate> {
  const { cgroup, serve = false } = o;
  const child = spawn(cmd, args, { cwd: o.cwd, env: o.env, detached: true, stdio: serve ? SERVED_STDIO : o.filterFd ? FILTER_STDIO : STDIO });
  const exit = new Promise<ExitInfo>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const pid = await new Promise<number>((resolve, reject) => {
    child.once('error', reject);
    child.once('spawn', () => (child.pid === undefined ? reject(new Error('spawn gave no pid')) : resolve(child.pid)));
  });
  // Until the worker runs, stderr is held in paused mode (a 'readable' listener that reads
  // nothing): Node drains unread output when a child exits, and it may say why the sandbox failed.
  const stderr = child.stderr as Readable;
  // A pipe fails only with its child; whoever reads it sees the end (an unread one must not end the agent).
  for (const s of [child.stdout, stderr]) s?.on('error', () => undefined);
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
    async open(input: string, seccomp?: Buffer | null) {
      if (o.filterFd) {
        const filter = (child.stdio as unknown as Writable[])[SECCOMP_FD] as Writable;
        filter.on('error', () => undefined);
        filter.end(seccomp ?? Buffer.alloc(0));
      }
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
      // The pipes the agent writes to are its own to close: nothing will read them now.
      for (const fd of [3, SECCOMP_FD]) (child.stdio as unknown as (Writable | null | undefined)[])[fd]?.destroy();
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
