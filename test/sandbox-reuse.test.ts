/**
 * When the agent's launcher reuses a job's sandbox and when it must not: the launcher the agent
 * picks on this machine, real bubblewrap sandboxes and workers, tasks of one job one after another.
 * (The end-to-end view — what a reused sandbox's next task finds — is in sandbox-isolation.)
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it, onTestFinished, type TestContext } from 'vitest';
import type { Launcher, WorkerExit } from '../src/agent/launcher.js';
import { chooseLauncher } from '../src/agent/sandbox/index.js';
import { silentLogger } from '../src/shared/log.js';
import { tempDir } from './helpers/cluster.js';
import { unique } from './helpers/sandbox.js';

const MiB = 2 ** 20;

/** A launcher that reuses sandboxes, in a temporary work dir; skips the test, saying why, where none can. */
async function reusingLauncher(ctx: TestContext): Promise<{ launcher: Launcher; workDir: string }> {
  const work = tempDir('raysub-reuse-');
  const workDir = path.join(work, 'agent');
  const launcher: Launcher = await chooseLauncher(
    { sandbox: 'auto', workDir, hiddenPaths: [], nodeName: unique('reuse'), sandboxInterpreters: ['python3'], sandboxBinds: [], taskPidsMax: 4096, taskOpenFiles: 4096, sandboxReuse: true, sandboxSeccomp: true },
    silentLogger(),
  );
  onTestFinished(() => launcher.close?.());
  if (launcher.mode !== 'bwrap' || !launcher.cgroups || !launcher.detail.includes('reuse a sandbox')) {
    console.warn(`skipping "${ctx.task.name}": this machine's launcher does not reuse sandboxes (${launcher.mode}: ${launcher.detail})`);
    ctx.skip();
  }
  return { launcher, workDir };
}

describe('sandbox reuse', () => {
  it('reuses a sandbox after a task that exits, even with a failure, and never after one stopped or killed for memory, nor for another request', async (ctx) => {
    const { launcher, workDir } = await reusingLauncher(ctx);

    let n = 0;
    /** One task of job "job": its output and exit; `stop` terminates it once it has printed. */
    const task = async (line: string, opts: { memory?: number; stop?: boolean } = {}): Promise<{ out: string; exit: WorkerExit }> => {
      const key = `job.${n++}.1`;
      const cwd = path.join(workDir, 'tasks', 'job', key);
      fs.mkdirSync(cwd, { recursive: true });
      const w = await launcher.launch({
        key,
        group: 'job',
        argv: ['/bin/sh', '-c', line],
        cwd,
        env: { PATH: '/usr/bin:/bin' },
        resources: { cpus: 0, gpus: 0, memory: opts.memory ?? 0, custom: {} },
        gpuIds: [],
        network: 'host',
        readOnlyPaths: [],
      });
      let out = '';
      w.stderr.resume();
      // The exit can be reported before the last output is read: the output is done at its end.
      const ended = new Promise<void>((resolve) => w.stdout.once('end', resolve));
      const printed = new Promise<void>((resolve) =>
        w.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          if (out.includes('\n')) resolve();
        }),
      );
      if (opts.stop) {
        await printed;
        await w.terminate(200);
      }
      const exit = await w.exited;
      await ended;
      fs.rmSync(cwd, { recursive: true, force: true });
      return { out, exit };
    };
    const ns = 'readlink /proc/self/ns/pid';

    const first = await task(ns);
    expect(first.exit).toMatchObject({ code: 0, oom: false });
    const again = await task(`${ns}; exit 3`);
    // The next task of the job ran in the same sandbox, and its own exit status came back.
    expect(again.out).toBe(first.out);
    expect(again.exit).toMatchObject({ code: 3, oom: false });
    // A failing exit is a normal end: the sandbox is served again.
    const afterFailure = await task(ns);
    expect(afterFailure.out).toBe(first.out);

    // Stopped: the sandbox goes with it.
    const stopped = await task(`${ns}; exec sleep 60`, { stop: true });
    expect(stopped.out).toBe(first.out);
    const afterStop = await task(ns);
    expect(afterStop.exit.code).toBe(0);
    expect(afterStop.out).not.toBe(first.out);

    // Another resource request: another sandbox (a limit one task sets and the next does not
    // would otherwise carry over).
    const limited = await task(ns, { memory: 64 * MiB });
    expect(limited.out).not.toBe(afterStop.out);

    // Killed by the kernel for exceeding its memory limit: the sandbox goes too.
    const hog = await task(`${ns}; exec python3 -c "b = bytearray(400 << 20); b[::4096] = b'x' * len(b[::4096])"`, { memory: 64 * MiB });
    expect(hog.out).toBe(limited.out);
    expect(hog.exit.oom).toBe(true);
    const afterOom = await task(ns, { memory: 64 * MiB });
    expect(afterOom.exit.code).toBe(0);
    expect(afterOom.out).not.toBe(limited.out);
  });

  it("never gives a task's output to the task before it in the same sandbox, however late that one's output is read", async (ctx) => {
    const { launcher, workDir } = await reusingLauncher(ctx);
    let n = 0;
    const launch = (line: string) => {
      const key = `job.${n++}.1`;
      const cwd = path.join(workDir, 'tasks', 'job', key);
      fs.mkdirSync(cwd, { recursive: true });
      const spec = { key, group: 'job', argv: ['/bin/sh', '-c', line], cwd, env: { PATH: '/usr/bin:/bin' }, gpuIds: [], network: 'host' as const, readOnlyPaths: [] };
      return launcher.launch({ ...spec, resources: { cpus: 0, gpus: 0, memory: 0, custom: {} } });
    };
    const readAll = (st: NodeJS.ReadableStream) =>
      new Promise<string>((resolve) => {
        let out = '';
        st.on('data', (d: Buffer) => (out += d.toString()));
        st.once('end', () => resolve(out));
      });
    // The first task prints more than its reader buffers unread (16 KiB), waits, then prints
    // more: its reader stops before the end, as a busy agent's can. The next task's output is its
    // own, and the first's is whole once read.
    const first = await launch("head -c 16384 /dev/zero | tr '\\0' a; sleep 0.3; head -c 40000 /dev/zero | tr '\\0' b; echo; echo first-end");
    first.stderr.resume();
    expect((await first.exited).code).toBe(0);
    const next = await launch('echo next');
    const [nextOut] = await Promise.all([readAll(next.stdout), readAll(next.stderr), next.exited]);
    expect(nextOut).toBe('next\n');
    expect(await readAll(first.stdout)).toBe(`${'a'.repeat(16384)}${'b'.repeat(40000)}\nfirst-end\n`);
    // Read promptly to its end, a task's sandbox still serves the job's next task.
    const ns = async () => {
      const w = await launch('readlink /proc/self/ns/pid');
      const [out] = await Promise.all([readAll(w.stdout), readAll(w.stderr), w.exited]);
      return out;
    };
    const a = await ns();
    expect(await ns()).toBe(a);
  });
});
