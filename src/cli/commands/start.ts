import { spawn } from 'node:child_process';
import v8 from 'node:v8';
import fs from 'node:fs';
import { agentOptionsFrom, headOptionsFrom, type StartFlags } from '../../shared/config.js';
import { dataDirLayout, ensurePrivateDir } from '../../shared/dataDir.js';
import { RaysubError } from '../../shared/errors.js';
import { EXIT } from '../exitCodes.js';

export interface StartCommandFlags extends StartFlags {
  head?: boolean;
  detach?: boolean;
}

/**
 * SIGINT/SIGTERM from the moment it is called: the first runs `first` (drain, then close) once
 * `run` has what to close; a second one runs `now` (close at once, killing what runs) or, without
 * it, exits the process. A signal during start-up (the embedded agent mounting its object store,
 * a service manager stopping what it just started) is answered when start-up ends, so what was
 * set up is taken down again instead of left behind by a process killed half-way.
 */
function untilSignalled(duringStartUp?: () => void): { run(first: () => Promise<void>, now?: () => Promise<void>): Promise<number> } {
  let received: NodeJS.Signals | null = null;
  let handlers: { first: () => Promise<void>; now?: () => Promise<void>; resolve: (code: number) => void } | null = null;
  let stopping = false;
  const stop = (signal: NodeJS.Signals): void => {
    if (!handlers) return;
    const { first, resolve } = handlers;
    if (!received) process.stderr.write(`raysub: ${signal} received; shutting down (send it again to stop now)\n`);
    stopping = true;
    first().then(
      () => resolve(EXIT.OK),
      (err: unknown) => {
        process.stderr.write(`raysub: error while shutting down: ${(err as Error).message}\n`);
        resolve(EXIT.INTERNAL);
      },
    );
  };
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping || received) {
      process.stderr.write(`raysub: ${signal} again; stopping now\n`);
      const now = handlers?.now;
      if (!now) process.exit(EXIT.STOPPED);
      void now().finally(() => process.exit(EXIT.STOPPED));
      return;
    }
    if (handlers) stop(signal);
    else {
      received = signal;
      duringStartUp?.();
      process.stderr.write(`raysub: ${signal} received while starting; shutting down once what started is up (send it again to stop now)\n`);
    }
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return {
    run(first, now) {
      return new Promise((resolve) => {
        handlers = { first, now, resolve };
        if (received) stop(received);
      });
    },
  };
}

async function waitForHeadFile(dataDir: string, pid: number, logFile: string, timeoutMs: number): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  const file = dataDirLayout(dataDir).headInfo;
  while (Date.now() < deadline) {
    try {
      const info = JSON.parse(fs.readFileSync(file, 'utf8')) as { url: string; pid: number };
      if (info.pid === pid) return info.url;
    } catch {
      // not written yet
    }
    try {
      process.kill(pid, 0);
    } catch {
      throw new RaysubError('INTERNAL', `the head exited during start-up; see ${logFile}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new RaysubError('INTERNAL', `the head did not start within ${timeoutMs / 1000}s; see ${logFile}`);
}

export async function startCommand(flags: StartCommandFlags, argv: string[]): Promise<number> {
  // Heads and agents run for months with a small live heap; a small young generation keeps their
  // resident memory close to what they actually use. The head, which keeps every job's history,
  // also trades a little CPU for a heap that grows less eagerly (see BENCHMARKS.md).
  v8.setFlagsFromString('--max-semi-space-size=2');
  if (flags.head) v8.setFlagsFromString('--optimize-for-size');
  if (flags.head && flags.address) throw new RaysubError('USAGE', 'use --head to start a head, or --address to start an agent, not both');
  if (!flags.head && !flags.address) throw new RaysubError('USAGE', 'say what to start: --head, or --address URL --token-file FILE for an agent');
  if (flags.head) {
    const opts = headOptionsFrom(flags);
    if (flags.detach) {
      const layout = dataDirLayout(opts.dataDir);
      ensurePrivateDir(layout.root);
      const logFile = layout.headLog;
      const out = fs.openSync(logFile, 'a', 0o600);
      const args = argv.slice(1).filter((a) => a !== '--detach');
      const child = spawn(process.execPath, args, { detached: true, stdio: ['ignore', out, out] });
      child.unref();
      const url = await waitForHeadFile(opts.dataDir, child.pid ?? -1, logFile, 60_000);
      process.stdout.write(`raysub head started in the background at ${url} (pid ${child.pid}); logs: ${logFile}\n`);
      process.stdout.write(`Token: ${layout.token}. Stop it with: raysub stop${flags.dataDir ? ` --data-dir ${flags.dataDir}` : ''}\n`);
      return EXIT.OK;
    }
    const signals = untilSignalled();
    const { startHead, isLoopbackHost } = await import('../../head/index.js');
    const head = await startHead(opts);
    process.stderr.write(`raysub head listening at ${head.url}\n`);
    if (!opts.tls && !isLoopbackHost(opts.host)) {
      process.stderr.write(`raysub: warning: serving plain HTTP on ${opts.host}: tokens, jobs and logs cross the network unencrypted; serve HTTPS with --tls-cert and --tls-key (raysub cert create makes a pair)\n`);
    }
    process.stderr.write(`  data dir: ${head.dataDir} (token in ${dataDirLayout(head.dataDir).token})\n`);
    if (head.agent) process.stderr.write(`  local agent: ${head.agent.nodeName} (sandbox: ${head.agent.launcher.mode})\n`);
    return signals.run(() => head.close());
  }
  if (flags.detach) throw new RaysubError('USAGE', '--detach is only for --head; run agents under your service manager');
  const opts = agentOptionsFrom(flags);
  for (const w of opts.warnings) process.stderr.write(`raysub: warning: ${w}\n`);
  // An agent may wait long for its head at start-up: a signal then stops the wait.
  const starting = new AbortController();
  const signals = untilSignalled(() => starting.abort());
  const { startAgent } = await import('../../agent/index.js');
  const agent = await startAgent(opts, undefined, starting.signal);
  if (starting.signal.aborted) return signals.run(() => agent.close());
  process.stderr.write(`raysub agent ${agent.nodeName} connected to ${opts.address} (sandbox: ${agent.launcher.mode})\n`);
  return signals.run(
    () => agent.drain(),
    () => agent.close(),
  );
}
