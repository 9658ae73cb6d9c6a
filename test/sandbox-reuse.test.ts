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

  it("runs another job's task in a sandbox a job's task left, with that job's directories bound and nothing of the job before", async (ctx) => {
    const { launcher, workDir } = await reusingLauncher(ctx);
    const marker = unique('left-running');
    /** Reports what it finds, as JSON on one line; with `leave`, then leaves files, an IPC object and a process behind. */
    const script = (leave: boolean, look: Record<string, string>) => `
import ctypes, json, os, subprocess, sys
def attempt(fn):
    try:
        return fn()
    except OSError as e:
        return "err:" + (os.strerror(e.errno) if e.errno else type(e).__name__)
look = json.loads(${JSON.stringify(JSON.stringify(look))})
res = {
    "ns": os.readlink("/proc/self/ns/pid"), "uid": os.getuid(), "cwd": os.getcwd(),
    "tmp": sorted(n for n in os.listdir("/tmp") if n.startswith("left")),
    "shm": sorted(os.listdir("/dev/shm")),
    "ipc": [l.split()[1] for l in open("/proc/sysvipc/shm").readlines()[1:]],
    "procs": sorted(open("/proc/%s/cmdline" % p, "rb").read().replace(b"\\0", b" ").decode() for p in os.listdir("/proc") if p.isdigit()),
    "jobs": attempt(lambda: os.listdir("/run/raysub/jobs")),
}
for name, p in look.items():
    res[name] = attempt(lambda: sorted(os.listdir(p)) if os.path.isdir(p) else open(p).read())
res["write_injob"] = attempt(lambda: open(os.path.join(look["injob"], "mine"), "w").write("x"))
print(json.dumps(res), flush=True)
if ${leave ? 'True' : 'False'}:
    open("/tmp/left", "w").write("x")
    open("/dev/shm/left", "w").write("x")
    open("left", "w").write("x")
    ctypes.CDLL(None).shmget(0, 4096, 0o1000 | 0o600)
    subprocess.Popen(["sleep", "600", "${marker}"], start_new_session=True)
`;
    const run = async (job: string, leave: boolean, request = 0): Promise<Record<string, unknown>> => {
      const key = `${job}.0.1`;
      const cwd = path.join(workDir, 'tasks', job, key);
      const injob = path.join(workDir, 'j', `${job}-dir`);
      fs.mkdirSync(cwd, { recursive: true });
      fs.mkdirSync(injob, { recursive: true });
      fs.writeFileSync(path.join(injob, 'sock'), job);
      const look = { tasks: path.join(workDir, 'tasks'), injobs: path.join(workDir, 'j'), injob, own: path.join(injob, 'sock'), a_dir: path.join(workDir, 'tasks', 'job-a'), a_injob: path.join(workDir, 'j', 'job-a-dir') };
      fs.writeFileSync(path.join(cwd, 't.py'), script(leave, look));
      const w = await launcher.launch({
        key,
        group: job,
        argv: ['/bin/sh', '-c', 'exec python3 t.py'],
        cwd,
        env: { PATH: '/usr/bin:/bin' },
        resources: { cpus: 0, gpus: 0, memory: request, custom: {} },
        gpuIds: [],
        network: 'host',
        readOnlyPaths: [injob],
      });
      let out = '';
      let err = '';
      w.stdout.on('data', (d: Buffer) => (out += d.toString()));
      w.stderr.on('data', (d: Buffer) => (err += d.toString()));
      const ended = new Promise<void>((resolve) => w.stdout.once('end', resolve));
      expect((await w.exited).code, err).toBe(0);
      await ended;
      // As the agent does once a task is over: its directory goes.
      fs.rmSync(cwd, { recursive: true, force: true });
      return JSON.parse(out) as Record<string, unknown>;
    };

    const a = await run('job-a', true);
    expect(a.tasks).toEqual(['job-a']);
    // The first job's directories stay on the host while the second job's task runs.
    const b = await run('job-b', false);
    // The same sandbox (PID namespace, uid)...
    expect(b.ns).toBe(a.ns);
    expect(b.uid).toBe(a.uid);
    // ...with the second job's directories bound where the host has them, and no other job's.
    expect(b.cwd).toBe(path.join(workDir, 'tasks', 'job-b', 'job-b.0.1'));
    expect(b.tasks).toEqual(['job-b']);
    expect(b.injobs).toEqual(['job-b-dir']);
    expect(b.own).toBe('job-b');
    expect(b.write_injob).toMatch(/^err:/);
    expect(b.a_dir).toMatch(/^err:/);
    expect(b.a_injob).toMatch(/^err:/);
    expect(b.jobs).toBe('err:Permission denied');
    // Nothing the first job left: files, IPC objects, processes.
    expect(b.tmp).toEqual([]);
    expect(b.shm).toEqual([]);
    expect(b.ipc).toEqual([]);
    expect((b.procs as string[]).join('\n')).not.toContain(marker);
    // The same job again: the same sandbox, its directories still bound.
    const again = await run('job-b', false);
    expect(again.ns).toBe(a.ns);
    expect(again.own).toBe('job-b');
    // Another request: another sandbox.
    const other = await run('job-c', false, 64 * MiB);
    expect(other.ns).not.toBe(a.ns);
  });

  it("never gives a task a sandbox whose cgroup still holds the memory of objects a task before it left in its job's store", async (ctx) => {
    const { launcher, workDir } = await reusingLauncher(ctx);
    // The agent's shared-memory object store: a tmpfs directory with one directory per job in it.
    if (!fs.existsSync('/dev/shm') || fs.statfsSync('/dev/shm').type !== 0x01021994) {
      console.warn(`skipping "${ctx.task.name}": /dev/shm is not a tmpfs here`);
      ctx.skip();
    }
    const store = fs.mkdtempSync('/dev/shm/raysub-reuse-test-');
    onTestFinished(() => fs.rmSync(store, { recursive: true, force: true }));
    launcher.addJobRoot?.(store);
    /** One task of `job` with a 256 MiB limit and its job's store directory bound writable. */
    const run = async (job: string, line: string): Promise<{ out: string; exit: WorkerExit }> => {
      const key = `${job}.0.1`;
      const cwd = path.join(workDir, 'tasks', job, key);
      const objects = path.join(store, job);
      fs.mkdirSync(cwd, { recursive: true });
      fs.mkdirSync(objects, { recursive: true, mode: 0o1777 });
      fs.chmodSync(objects, 0o1777);
      const w = await launcher.launch({
        key,
        group: job,
        argv: ['/bin/sh', '-c', line],
        cwd,
        env: { PATH: '/usr/bin:/bin', OBJECTS: objects },
        resources: { cpus: 0, gpus: 0, memory: 256 * MiB, custom: {} },
        gpuIds: [],
        network: 'host',
        readOnlyPaths: [],
        writablePaths: [objects],
      });
      let out = '';
      w.stdout.on('data', (d: Buffer) => (out += d.toString()));
      w.stderr.on('data', (d: Buffer) => (out += d.toString()));
      const ended = new Promise<void>((resolve) => w.stdout.once('end', resolve));
      const exit = await w.exited;
      await ended;
      fs.rmSync(cwd, { recursive: true, force: true });
      return { out, exit };
    };
    const ns = 'readlink /proc/self/ns/pid';
    const touch150 = `python3 -c "b = bytearray(150 << 20); b[::4096] = b'x' * len(b[::4096]); print('allocated')"`;

    // A task of job A leaves a little in its store: the sandbox is served again, to job B.
    const small = await run('job-a', `${ns}; head -c 1000000 /dev/zero > "$OBJECTS/small"`);
    expect(small.exit).toMatchObject({ code: 0, oom: false });
    const next = await run('job-b', ns);
    expect(next.out).toBe(small.out);

    // A task of job A leaves 200 MB in its store, which stays while job A runs on.
    const big = await run('job-a', `${ns}; head -c 200000000 /dev/zero > "$OBJECTS/big"`);
    expect(big.exit).toMatchObject({ code: 0, oom: false });
    expect(fs.statSync(path.join(store, 'job-a', 'big')).size).toBe(200_000_000);
    // Job B's next task gets the 256 MiB it asked for: 150 of them fit, in a sandbox of its own.
    const after = await run('job-b', `${ns}; ${touch150}`);
    expect(after.exit, after.out).toMatchObject({ code: 0, oom: false });
    expect(after.out).toContain('allocated');
    expect(after.out.split('\n')[0]).not.toBe(big.out.trim());
    // And so does job A's own next task.
    const own = await run('job-a', `${ns}; head -c 200000000 /dev/zero > "$OBJECTS/big2"; ${ns}`);
    expect(own.exit).toMatchObject({ code: 0, oom: false });
    const ownNext = await run('job-a', `${ns}; ${touch150}`);
    expect(ownNext.exit, ownNext.out).toMatchObject({ code: 0, oom: false });
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
