/**
 * The sandbox against hostile and careless jobs: more tasks than a node can hold, kernel keyrings
 * left for the next holder of a uid, user namespaces, the seccomp filter, tracing a sibling, and
 * cgroups a killed agent left behind. Real bubblewrap sandboxes and workers, through the launcher
 * the agent would pick on this machine.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it, onTestFinished, type TestContext } from 'vitest';
import type { WorkerExit, WorkerHandle } from '../src/agent/launcher.js';
import { UidPool } from '../src/agent/sandbox/identity.js';
import { openCgroups } from '../src/agent/sandbox/probe.js';
import { probeBwrap } from '../src/agent/sandbox/probeBwrap.js';
import { SandboxLauncher } from '../src/agent/sandbox/sandboxLauncher.js';
import type { SandboxOptions } from '../src/agent/sandbox/settings.js';
import { agentProcessEnv } from '../src/shared/config.js';
import { RaysubError } from '../src/shared/errors.js';
import { silentLogger } from '../src/shared/log.js';
import { tempDir } from './helpers/cluster.js';
import { unique } from './helpers/sandbox.js';

interface TestLauncher {
  launcher: SandboxLauncher;
  /** Start one task of job `group` running `line` under /bin/sh. */
  start(group: string, line: string): Promise<WorkerHandle & { output: Promise<string> }>;
  /** Run one task to its end. */
  run(group: string, line: string): Promise<{ out: string; exit: WorkerExit }>;
}

/**
 * A bwrap launcher as the agent would build it here (a root agent: a uid per task), with `uids`
 * uids at most; null (the test is skipped, saying why) where this machine cannot give one.
 */
async function bwrapLauncher(ctx: TestContext, o: { uids?: number } = {}): Promise<TestLauncher | null> {
  const workDir = path.join(tempDir('raysub-hostile-'), 'agent');
  const opts: SandboxOptions = { sandbox: 'bwrap', workDir, hiddenPaths: [], nodeName: unique('hostile'), sandboxInterpreters: ['python3'], sandboxBinds: [], taskPidsMax: 4096, taskOpenFiles: 4096, sandboxReuse: true };
  const log = silentLogger();
  const cg = openCgroups(opts);
  const probed = await probeBwrap(opts, agentProcessEnv(), cg, log);
  if (!probed.ok || !probed.settings.uids) {
    cg.cgroups?.close();
    console.warn(`skipping "${ctx.task.name}": no bubblewrap sandbox with a uid per task here (${probed.ok ? 'the agent is not root' : probed.reason})`);
    ctx.skip();
    return null;
  }
  const uids = o.uids ? new UidPool(probed.settings.uids.base, o.uids) : probed.settings.uids;
  const launcher = new SandboxLauncher('bwrap', 'test', { ...probed.settings, uids }, { log });
  launcher.prestart();
  onTestFinished(() => launcher.close());
  let n = 0;
  const start = async (group: string, line: string): Promise<WorkerHandle & { output: Promise<string> }> => {
    const key = `${group}.${n++}.1`;
    const cwd = path.join(workDir, 'tasks', group, key);
    fs.mkdirSync(cwd, { recursive: true });
    const w = await launcher.launch({ key, group, argv: ['/bin/sh', '-c', line], cwd, env: { PATH: '/usr/bin:/bin' }, resources: { cpus: 0, gpus: 0, memory: 0, custom: {} }, gpuIds: [], network: 'host', readOnlyPaths: [] });
    onTestFinished(() => w.terminate(0));
    let out = '';
    w.stdout.on('data', (d: Buffer) => (out += d.toString()));
    w.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const output = Promise.all([new Promise((r) => w.stdout.once('end', r)), new Promise((r) => w.stderr.once('end', r))]).then(() => out);
    return Object.assign(w, { output });
  };
  const run = async (group: string, line: string): Promise<{ out: string; exit: WorkerExit }> => {
    const w = await start(group, line);
    const exit = await w.exited;
    return { out: await w.output, exit };
  };
  return { launcher, start, run };
}

describe('a node at capacity', () => {
  it('refuses the task past its capacity with NODE_AT_CAPACITY, after taking back the uids of idle sandboxes, and keeps running', async (ctx) => {
    const t = await bwrapLauncher(ctx, { uids: 2 });
    if (!t) return;
    expect(t.launcher.capacity).toBe(2);
    // A job's task ends: its sandbox waits for the job's next task, holding its uid.
    expect((await t.run('a', 'true')).exit.code).toBe(0);
    // The other uid goes to a long task; no spare can be started now (no uid left): no crash.
    const b = await t.start('b', 'exec sleep 60');
    // With no uid free, the idle sandbox of job a gives its uid up for job c.
    const c = await t.start('c', 'exec sleep 60');
    // Now every uid runs a task: the next is refused, as a typed condition.
    const refused = await t.start('d', 'true').then(
      () => null,
      (err: unknown) => err,
    );
    expect(refused).toBeInstanceOf(RaysubError);
    expect(refused).toMatchObject({ code: 'NODE_AT_CAPACITY', retryable: true });
    // Once a task ends its uid serves the next one.
    await b.terminate(100);
    expect((await t.run('e', 'echo ran')).out).toBe('ran\n');
    await c.terminate(100);
  });
});
