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
import { findCgroupMounts } from '../src/agent/sandbox/cgroupMounts.js';
import { findExecutable, openCgroups } from '../src/agent/sandbox/probe.js';
import { probeBwrap } from '../src/agent/sandbox/probeBwrap.js';
import { SandboxLauncher } from '../src/agent/sandbox/sandboxLauncher.js';
import type { SandboxOptions } from '../src/agent/sandbox/settings.js';
import { agentProcessEnv } from '../src/shared/config.js';
import { RaysubError } from '../src/shared/errors.js';
import { silentLogger } from '../src/shared/log.js';
import { processesWith, runCli, startAgent, startHead, tempDir, waitFor } from './helpers/cluster.js';
import { resultOf, taskCgroups, unique } from './helpers/sandbox.js';

interface TaskOptions {
  /** Files written into the task's directory first. */
  files?: Record<string, string>;
  userNamespaces?: boolean;
}

interface TestLauncher {
  launcher: SandboxLauncher;
  /** Start one task of job `group` running `line` under /bin/sh. */
  start(group: string, line: string, o?: TaskOptions): Promise<WorkerHandle & { output: Promise<string> }>;
  /** Run one task to its end. */
  run(group: string, line: string, o?: TaskOptions): Promise<{ out: string; exit: WorkerExit }>;
}

interface LauncherOptions {
  /** At most this many uids (tasks at once). */
  uids?: number;
  /** The node's seccomp deny list (--no-sandbox-seccomp: false). */
  denyList?: boolean;
  /** Start workers through setpriv and sh, as where raysub-init was not built. */
  withoutInit?: boolean;
}

/**
 * A bwrap launcher as the agent would build it here (a root agent: a uid per task), with `uids`
 * uids at most; null (the test is skipped, saying why) where this machine cannot give one.
 */
async function bwrapLauncher(ctx: TestContext, o: LauncherOptions = {}): Promise<TestLauncher | null> {
  const workDir = path.join(tempDir('raysub-hostile-'), 'agent');
  const opts: SandboxOptions = { sandbox: 'bwrap', workDir, hiddenPaths: [], nodeName: unique('hostile'), sandboxInterpreters: ['python3', 'node'], sandboxBinds: [], taskPidsMax: 4096, taskOpenFiles: 4096, sandboxReuse: true, sandboxSeccomp: o.denyList ?? true };
  const log = silentLogger();
  const cg = openCgroups(opts);
  const probed = await probeBwrap(opts, agentProcessEnv(), cg, log);
  if (!probed.ok || !probed.settings.uids) {
    cg.cgroups?.close();
    console.warn(`skipping "${ctx.task.name}": no bubblewrap sandbox with a uid per task here (${probed.ok ? 'the agent is not root' : probed.reason})`);
    ctx.skip();
    return null;
  }
  const uids = o.uids ? new UidPool(probed.settings.uids.base, { size: o.uids, keys: probed.settings.uids.keys }) : probed.settings.uids;
  let bwrap = probed.settings.bwrap;
  if (o.withoutInit && bwrap) {
    const setpriv = findExecutable('setpriv', agentProcessEnv().PATH);
    if (!setpriv) {
      console.warn(`skipping "${ctx.task.name}": no setpriv here`);
      ctx.skip();
      return null;
    }
    bwrap = { ...bwrap, init: null, setpriv };
  }
  const launcher = new SandboxLauncher('bwrap', 'test', { ...probed.settings, uids, bwrap }, { log });
  launcher.prestart();
  onTestFinished(() => launcher.close());
  let n = 0;
  const start = async (group: string, line: string, t: TaskOptions = {}): Promise<WorkerHandle & { output: Promise<string> }> => {
    const key = `${group}.${n++}.1`;
    const cwd = path.join(workDir, 'tasks', group, key);
    fs.mkdirSync(cwd, { recursive: true });
    for (const [name, text] of Object.entries(t.files ?? {})) fs.writeFileSync(path.join(cwd, name), text);
    const resources = { cpus: 0, gpus: 0, memory: 0, custom: {} };
    const w = await launcher.launch({ key, group, argv: ['/bin/sh', '-c', line], cwd, env: { PATH: '/usr/bin:/bin' }, resources, gpuIds: [], network: 'host', readOnlyPaths: [], userNamespaces: t.userNamespaces });
    onTestFinished(() => w.terminate(0));
    let out = '';
    w.stdout.on('data', (d: Buffer) => (out += d.toString()));
    w.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const output = Promise.all([new Promise((r) => w.stdout.once('end', r)), new Promise((r) => w.stderr.once('end', r))]).then(() => out);
    return Object.assign(w, { output });
  };
  const run = async (group: string, line: string, t?: TaskOptions): Promise<{ out: string; exit: WorkerExit }> => {
    const w = await start(group, line, t);
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

/** Plants a key in the user keyring ("plant"), or looks for it ("look SERIAL"); says what it got. */
const KEYS = `
import ctypes, json, os, sys
libc = ctypes.CDLL(None, use_errno=True)
ADD_KEY, KEYCTL = {"x86_64": (248, 250), "aarch64": (217, 219)}[os.uname().machine]
def call(nr, *args):
    r = libc.syscall(nr, *args)
    return r if r >= 0 else -ctypes.get_errno()
def read(serial):
    buf = ctypes.create_string_buffer(4096)
    n = call(KEYCTL, 11, serial, buf, 4096)
    return buf.raw[:n] if n >= 0 else n
def describe(spec):
    buf = ctypes.create_string_buffer(512)
    n = call(KEYCTL, 6, spec, buf, 512)
    return buf.value.decode() if n >= 0 else n
res = {"uid": os.getuid(), "session": describe(-3), "session_id": call(KEYCTL, 0, -3, 0)}
if sys.argv[1] == "plant":
    res["planted"] = call(ADD_KEY, b"user", b"planted", b"s3cret", 6, -4)
else:
    # As an attacker would: possess the user keyring (link it into the session keyring), then read.
    res["linked"] = call(KEYCTL, 8, -4, -3)
    got = read(int(sys.argv[2]))
    res["read"] = got.decode(errors="replace") if isinstance(got, bytes) else got
    res["visible"] = [l for l in open("/proc/keys").read().splitlines() if "planted" in l]
    ring = read(-4)
    res["user_keyring_keys"] = len(ring) // 4 if isinstance(ring, bytes) else ring
print("RESULT " + json.dumps(res), flush=True)
`;

interface KeysResult {
  uid: number;
  session: string | number;
  session_id: number;
  planted?: number;
  read?: string | number;
  visible?: string[];
  user_keyring_keys?: number;
}

describe('kernel keyrings', () => {
  it("leaves no key of one job to a later job given the same uid, and gives each task a new session keyring", async (ctx) => {
    // The deny list off, as an operator may choose: tasks can use keyrings at all.
    const t = await bwrapLauncher(ctx, { uids: 2, denyList: false });
    if (!t) return;
    const files = { 'keys.py': KEYS };
    const plant = await t.run('a', 'python3 keys.py plant', { files });
    const a = resultOf<KeysResult>(plant.out);
    expect(a.planted, plant.out).toBeGreaterThan(0);
    // Its session keyring is a new one of its own (root's, joined before the drop), not the user's default.
    expect(a.session).toMatch(/^keyring;0;0;[0-9a-f]+;_ses$/);
    // Job b holds the other uid; job c can only get a's uid (once a's idle sandbox gives it up
    // and the kernel holds no key of it any more).
    const b = await t.start('b', 'exec sleep 60');
    const look = await t.run('c', `python3 keys.py look ${a.planted}`, { files });
    const c = resultOf<KeysResult>(look.out);
    expect(c.uid).toBe(a.uid);
    expect(c.read).toBe(-126); // ENOKEY: the key is gone
    expect(c.visible).toEqual([]);
    expect(c.user_keyring_keys).toBe(0);
    expect(c.session_id).not.toBe(a.session_id);
    await b.terminate(100);
  });

  it('refuses keyring calls by default', async (ctx) => {
    const t = await bwrapLauncher(ctx);
    if (!t) return;
    const r = resultOf<KeysResult>((await t.run('a', 'python3 keys.py plant', { files: { 'keys.py': KEYS } })).out);
    expect(r.planted).toBe(-1); // EPERM
    expect(r.session).toBe(-1);
  });
});

/** Calls the seccomp filter refuses, each tried for real (a sibling process is the target of the tracing ones). */
const CALLS = `
import ctypes, json, os, time
libc = ctypes.CDLL(None, use_errno=True)
X86 = os.uname().machine == "x86_64"
NR = {"add_key": (248, 217), "keyctl": (250, 219), "request_key": (249, 218), "bpf": (321, 280), "perf_event_open": (298, 241),
      "userfaultfd": (323, 282), "io_uring_setup": (425, 425), "kexec_load": (246, 104), "unshare": (272, 97), "setns": (308, 268),
      "mount": (165, 40), "ptrace": (101, 117), "process_vm_readv": (310, 270), "clone3": (435, 435), "open_by_handle_at": (304, 265)}
def call(name, *args):
    r = libc.syscall(NR[name][0 if X86 else 1], *args)
    return 0 if r >= 0 else ctypes.get_errno()
data = ctypes.create_string_buffer(b"sibling!", 8)
sibling = os.fork()
if sibling == 0:
    time.sleep(60)
    os._exit(0)
class Iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]
local = ctypes.create_string_buffer(8)
liov, riov = Iovec(ctypes.addressof(local), 8), Iovec(ctypes.addressof(data), 8)
params = ctypes.create_string_buffer(120)
res = {
    "add_key": call("add_key", b"user", b"k", b"v", 1, -4),
    "keyctl": call("keyctl", 0, -4, 0),
    "request_key": call("request_key", b"user", b"k", None, 0),
    "bpf": call("bpf", 0, None, 0),
    "perf_event_open": call("perf_event_open", None, 0, -1, -1, 0),
    "userfaultfd": call("userfaultfd", 0),
    "io_uring_setup": call("io_uring_setup", 1, params),
    "kexec_load": call("kexec_load", 0, 0, None, 0),
    "open_by_handle_at": call("open_by_handle_at", 0, None, 0),
    "unshare_user": call("unshare", 0x10000000),
    "setns": call("setns", 0, 0),
    "mount": call("mount", b"none", b"/tmp", b"tmpfs", 0, None),
    "ptrace_attach": call("ptrace", 16, sibling, None, None),
    "ptrace_seize": call("ptrace", 0x4206, sibling, None, None),
    "process_vm_readv": call("process_vm_readv", sibling, ctypes.byref(liov), 1, ctypes.byref(riov), 1, 0),
    "clone3": call("clone3", None, 0),
}
os.kill(sibling, 9)
os.waitpid(sibling, 0)
# A debugger may still trace the children it starts: the child asks (PTRACE_TRACEME).
child = os.fork()
if child == 0:
    os._exit(call("ptrace", 0, 0, None, None))
res["ptrace_traceme"] = os.waitpid(child, 0)[1] >> 8
res["seccomp"] = [l.split()[1] for l in open("/proc/self/status") if l.startswith("Seccomp:")][0]
print("RESULT " + json.dumps(res), flush=True)
`;

/** Ordinary work: numpy, a multiprocessing pool, threads, subprocesses. */
const PYTHON_WORK = `
import json, multiprocessing as mp, subprocess, threading, numpy
def square(x):
    return x * x
if __name__ == "__main__":
    with mp.Pool(2) as pool:
        squares = pool.map(square, range(5))
    box = []
    t = threading.Thread(target=lambda: box.append(float(numpy.linalg.norm(numpy.arange(4.0)))))
    t.start(); t.join()
    out = subprocess.run(["sh", "-c", "echo sub"], capture_output=True, text=True).stdout.strip()
    print("RESULT " + json.dumps({"squares": squares, "norm": round(box[0], 3), "sub": out}), flush=True)
`;

const NODE_WORK = `
const { Worker } = require('node:worker_threads');
const { execFileSync } = require('node:child_process');
const w = new Worker('require("node:worker_threads").parentPort.postMessage(6 * 7)', { eval: true });
w.on('message', (n) => console.log('RESULT ' + JSON.stringify({ worker: n, sub: execFileSync('sh', ['-c', 'echo sub']).toString().trim() })));
`;

describe('seccomp', () => {
  it('refuses keyrings, bpf, perf, userfaultfd, io_uring, kexec, namespaces, mounts and tracing a sibling with EPERM, and ordinary work runs', async (ctx) => {
    for (const withoutInit of [false, true]) {
      const t = await bwrapLauncher(ctx, { withoutInit });
      if (!t) return;
      const how = withoutInit ? 'setpriv and sh' : 'raysub-init';
      const calls = await t.run('calls', 'python3 calls.py', { files: { 'calls.py': CALLS } });
      const r = resultOf<Record<string, number | string>>(calls.out);
      const { clone3, ptrace_traceme, seccomp, ...refused } = r;
      for (const [name, errno] of Object.entries(refused)) expect(errno, `${name} (${how})`).toBe(1);
      // clone3's flags are out of the filter's reach: ENOSYS, and the C library falls back to clone.
      expect(clone3, how).toBe(38);
      expect(ptrace_traceme, how).toBe(0);
      expect(seccomp, how).toBe('2');

      const py = await t.run('py', 'python3 work.py', { files: { 'work.py': PYTHON_WORK } });
      expect(resultOf(py.out), `${how}: ${py.out}`).toEqual({ squares: [0, 1, 4, 9, 16], norm: 3.742, sub: 'sub' });
      const node = await t.run('node', 'node work.js', { files: { 'work.js': NODE_WORK } });
      expect(resultOf(node.out), `${how}: ${node.out}`).toEqual({ worker: 42, sub: 'sub' });
    }
  });
});

describe('user namespaces', () => {
  it('are refused in a task by default, and allowed to a job that asks for them', async (ctx) => {
    for (const withoutInit of [false, true]) {
      const t = await bwrapLauncher(ctx, { withoutInit });
      if (!t) return;
      const how = withoutInit ? 'setpriv and sh' : 'raysub-init';
      const refused = await t.run('plain', 'unshare -U true');
      expect(refused.exit.code, how).toBe(1);
      expect(refused.out, how).toMatch(/Operation not permitted/);
      // A job that asks: its own user (and mount) namespace, where it is root and may mount.
      const allowed = await t.run('userns', 'unshare -Urm sh -c "id -u; mount -t tmpfs none /tmp && echo mounted"', { userNamespaces: true });
      expect(allowed, how).toMatchObject({ out: '0\nmounted\n', exit: { code: 0 } });
    }
    // The node's deny list off: new namespaces stay refused.
    const off = await bwrapLauncher(ctx, { denyList: false });
    if (!off) return;
    expect((await off.run('plain', 'unshare -U true')).exit.code).toBe(1);
  });
});

/** Every cgroup root of agents named `node` (in any hierarchy). */
function rootsOf(node: string): string[] {
  const mounts = findCgroupMounts(fs.readFileSync('/proc/self/mountinfo', 'utf8'));
  return [...Object.values(mounts.v1), mounts.unified].flatMap((m) => {
    const top = m ? path.join(m, 'raysub') : null;
    return top && fs.existsSync(top) ? fs.readdirSync(top).filter((d) => d.startsWith(`${node}-`)).map((d) => path.join(top, d)) : [];
  });
}

describe('cgroups of a killed agent', () => {
  it("are removed with what still runs in them when the next agent starts, and a live agent's are left alone", async (ctx) => {
    const head = await startHead({ localAgent: false });
    const dead = unique('dead');
    const live = unique('live');
    // Without bubblewrap a task outlives its agent: the hardest leftover.
    const a = await startAgent(head, { name: dead, numCpus: 1, resources: { [dead]: 1 }, args: ['--sandbox', 'process'] });
    await startAgent(head, { name: live, numCpus: 1, resources: { [live]: 1 } });
    const nodes = await head.client.nodes();
    if (!nodes.every((n) => n.sandbox.cgroups)) {
      console.warn(`skipping "${ctx.task.name}": no cgroup limits here (${nodes.map((n) => n.sandbox.detail).join('; ')})`);
      return ctx.skip();
    }
    const markers = { [dead]: unique('orphan'), [live]: unique('working') };
    for (const node of [dead, live]) {
      const r = await runCli(['job', 'submit', '--no-wait', '--entrypoint-resources', JSON.stringify({ [node]: 1 }), '--', `sleep 600 # ${markers[node]}`], { env: head.env });
      expect(r.code, r.stderr).toBe(0);
    }
    const running = (node: string): Promise<number> => waitFor(() => processesWith(`sleep 600 # ${markers[node]}`)[0], { what: `the task on ${node}` });
    const orphan = await running(dead);
    await running(live);
    const liveCgroups = taskCgroups(live);
    expect(liveCgroups.length).toBeGreaterThan(0);

    await a.kill('SIGKILL');
    // Left behind: the agent's cgroups, and its task still running in them.
    expect(taskCgroups(dead).length).toBeGreaterThan(0);
    expect(processesWith(markers[dead] ?? '?')).toContain(orphan);

    await startAgent(head, { name: unique('next'), numCpus: 1 });
    expect(rootsOf(dead)).toEqual([]);
    await waitFor(() => !processesWith(markers[dead] ?? '?').includes(orphan), { what: "the dead agent's task to be killed" });
    // The live agent's task runs on, in its cgroups.
    expect(taskCgroups(live)).toEqual(liveCgroups);
    expect(processesWith(markers[live] ?? '?').length).toBeGreaterThan(0);
  });
});
