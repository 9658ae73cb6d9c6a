/**
 * Can this agent run workers in bubblewrap? Found on PATH, the way tasks get their users settled
 * (root: a uid per task via setpriv; otherwise a user namespace), interpreters discovered, and a
 * real trial sandbox started: anything short of a worker that ran is a reason not to use it.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Logger } from '../../shared/log.js';
import { uidBlockFor, UidPool } from './identity.js';
import { findInit } from './init.js';
import { keyCleaner } from './keyrings.js';
import { discoverInterpreters } from './interpreters.js';
import { planLayout } from './layout.js';
import { isWithin } from './mountPlan.js';
import { findExecutable, inheritedFds, type OpenedCgroups } from './probe.js';
import { SandboxLauncher } from './sandboxLauncher.js';
import type { SandboxOptions, SandboxSettings } from './settings.js';

export type BwrapProbe = { ok: true; settings: SandboxSettings; who: string; interpreters: string } | { ok: false; reason: string };

function version(bwrap: string): Promise<string> {
  return new Promise((resolve) => {
    execFile(bwrap, ['--version'], { timeout: 5000, encoding: 'utf8' }, (err, stdout) => resolve(err ? '' : stdout.trim().replace(/^bubblewrap\s*/, '')));
  });
}

export async function probeBwrap(opts: SandboxOptions, agentEnv: Readonly<Record<string, string>>, cg: OpenedCgroups, log: Logger): Promise<BwrapProbe> {
  const bwrap = findExecutable('bwrap', agentEnv.PATH);
  if (!bwrap) return { ok: false, reason: 'bwrap is not installed (apt-get install bubblewrap)' };
  const root = process.getuid?.() === 0;
  let setpriv: string | null = null;
  let uids: UidPool | null = null;
  const init = findInit();
  if (!init.path) log.info({ why: init.why }, 'raysub-init unavailable: workers start through setpriv and a shell script');
  if (root) {
    setpriv = init.path ? null : findExecutable('setpriv', agentEnv.PATH);
    if (!init.path && !setpriv) return { ok: false, reason: 'setpriv (util-linux) is not installed, nor raysub-init built; a root agent needs one to run tasks as unprivileged users' };
    const base = uidBlockFor(process.pid, fs.readFileSync('/proc/self/uid_map', 'utf8'));
    if (base === null) return { ok: false, reason: 'no block of unused uids is mapped in the agent\'s user namespace' };
    uids = new UidPool(base, { keys: keyCleaner(init.path), log });
  }

  const found = await discoverInterpreters(opts.sandboxInterpreters, agentEnv);
  for (const p of found.problems) log.warn({ problem: p }, 'interpreter not available inside the sandbox');
  const maskFile = path.join(cg.settings.stateDir, 'masked-file');
  const maskDir = path.join(cg.settings.stateDir, 'masked-dir');
  fs.writeFileSync(maskFile, '', { mode: 0o000 });
  fs.mkdirSync(maskDir, { mode: 0o000 });
  const layout = planLayout({
    interpreters: found.found,
    extraBinds: opts.sandboxBinds,
    hidden: [...opts.hiddenPaths, opts.workDir, cg.settings.stateDir],
    home: agentEnv.HOME ?? os.homedir(),
    maskFile,
    maskDir,
  });
  for (const r of layout.refused) log.warn({ path: r }, 'not exposed to workers');
  const visible = (p: string): boolean => layout.system.some((s) => s.kind === 'ro' && isWithin(p, s.path)) || layout.roBinds.some((b) => isWithin(p, b));
  if (setpriv && !visible(setpriv)) return { ok: false, reason: `setpriv at ${setpriv} would not be visible inside the sandbox` };
  const envBinary = findExecutable('env', agentEnv.PATH);

  const settings: SandboxSettings = {
    ...cg.settings,
    envBinary: envBinary && visible(envBinary) ? envBinary : null,
    bwrap: { path: bwrap, version: await version(bwrap), layout, setpriv, init: init.path, userns: !root },
    uids,
  };
  const trial = await trialRun(settings, agentEnv, log);
  if (trial) return { ok: false, reason: `a trial sandbox failed: ${trial}` };

  const fds = inheritedFds();
  if (fds.length > 0) log.warn({ fds }, 'the agent inherited open file descriptors that every worker will inherit too; start the agent without them');
  const who = `${root ? `each task as its own uid (from ${uids?.base})` : `tasks as uid ${settings.self.uid} in a user namespace`}, started by ${init.path ? 'raysub-init' : root ? 'setpriv and sh' : 'sh'}${settings.reuse && init.path && uids ? "; consecutive tasks reuse a sandbox (of their job first, else of another job), emptied between them" : ''}`;
  const interpreters = `interpreters: ${found.found.map((i) => `${i.name} ${i.version}`).join(', ') || 'none found'}`;
  return { ok: true, settings, who, interpreters };
}

/** Start one real worker in the sandbox; null if it ran, else why not. */
async function trialRun(settings: SandboxSettings, agentEnv: Readonly<Record<string, string>>, log: Logger): Promise<string | null> {
  const cwd = path.join(settings.stateDir, 'trial');
  fs.mkdirSync(cwd, { recursive: true });
  try {
    const launcher = new SandboxLauncher('bwrap', 'trial', settings, { log: log.child({ component: 'sandbox-trial' }), keepSpare: false });
    const worker = await launcher.launch({
      key: `trial-${process.pid}`,
      argv: ['/bin/sh', '-c', 'test -w . && test -w /tmp && ! test -w /usr'],
      cwd,
      env: { PATH: agentEnv.PATH ?? '/usr/bin:/bin' },
      resources: { cpus: 0, gpus: 0, memory: 0, custom: {} },
      gpuIds: [],
      network: 'none',
      readOnlyPaths: [],
    });
    worker.stdout.resume();
    worker.stderr.resume();
    const exit = await worker.exited;
    return exit.code === 0 ? null : `the trial worker exited with ${exit.code ?? exit.signal}`;
  } catch (err) {
    return (err as Error).message;
  } finally {
    fs.rmSync(cwd, { recursive: true, force: true });
  }
}
