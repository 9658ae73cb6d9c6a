/**
 * Isolation, end to end: real heads and agents, jobs submitted through the CLI, each trying to
 * reach what it must not (secrets, other jobs, the head's database, tokens, other processes,
 * the rest of the filesystem) and reporting what it got.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { processesWith, runCli, startAgent, startHead, tempDir, waitFor, workingDir } from './helpers/cluster.js';
import { shmStateDir } from '../src/agent/sandbox/stateDir.js';
import { requireSandbox, resultOf, taskCgroups, unique } from './helpers/sandbox.js';

/** Writes a secret in its own dir and in /tmp, says where it is, then waits to be stopped. */
const VICTIM = `
import os, sys, time
open("secret.txt", "w").write("victim-secret")
open("/tmp/victim-tmp", "w").write("x")
print("cwd=%s uid=%d" % (os.getcwd(), os.getuid()), flush=True)
time.sleep(600)
`;

/** Tries everything in its argument and prints what happened as one RESULT line. */
const PROBE = `
import json, os, socket, sys, urllib.error, urllib.request
spec = json.loads(sys.argv[1])
cwd = os.getcwd()
def attempt(fn):
    try:
        r = fn()
        return "ok" if r is None else "ok:" + str(r)[:200]
    except Exception as e:
        return "err:" + type(e).__name__
res = {"cwd": cwd, "uid": os.getuid(), "gid": os.getgid()}
res["read"] = {p: attempt(lambda p=p: open(p, "rb").read(64)) for p in spec["read"]}
res["list"] = {p: attempt(lambda p=p: sorted(os.listdir(p))) for p in spec["list"] + [os.path.dirname(cwd), "/tmp"]}
writes = spec["write"] + [os.path.join(os.path.dirname(cwd), "probe"), os.path.join(cwd, "mine.txt"), "/tmp/mine.txt"]
res["write"] = {p: attempt(lambda p=p: open(p, "w").write("x")) for p in writes}
procs = {}
for pid in [d for d in os.listdir("/proc") if d.isdigit()]:
    procs[pid] = {
        "cmdline": attempt(lambda: open("/proc/%s/cmdline" % pid, "rb").read().replace(b"\\0", b" ").decode()),
        "environ": attempt(lambda: open("/proc/%s/environ" % pid, "rb").read().decode(errors="replace")),
    }
res["procs"] = procs
res["env"] = dict(os.environ)
res["caps"] = [l.strip() for l in open("/proc/self/status") if l.startswith("CapEff") or l.startswith("CapBnd")]
res["ifaces"] = [name for _, name in socket.if_nameindex()]
def reach_head():
    try:
        return urllib.request.urlopen(os.environ["RAYSUB_ADDRESS"] + "/api/version", timeout=5).status
    except urllib.error.HTTPError as e:
        return e.code  # an answer all the same
res["head"] = attempt(reach_head)
print("RESULT " + json.dumps(res), flush=True)
`;

interface ProbeResult {
  cwd: string;
  uid: number;
  read: Record<string, string>;
  list: Record<string, string>;
  write: Record<string, string>;
  procs: Record<string, { cmdline: string; environ: string }>;
  env: Record<string, string>;
  caps: string[];
  ifaces: string[];
  head: string;
}

describe('sandbox isolation', () => {
  it('keeps a job from secrets, other jobs, the head\'s data and the rest of the system', async (ctx) => {
    const node = unique('iso');
    const head = await startHead({ numCpus: 4, args: ['--node-name', node] });
    await requireSandbox(head, ctx);
    const marker = unique('victim');
    const dir = workingDir({ 'victim.py': VICTIM, 'probe.py': PROBE });

    const started = await runCli(['job', 'submit', '--no-wait', '--submission-id', 'victim', '--working-dir', dir, '--', `python3 victim.py ${marker}`], { env: head.env });
    expect(started.code).toBe(0);
    const victim = await waitFor(async () => /cwd=(\S+) uid=(\d+)/.exec(await head.client.getLogs('victim')), { what: 'the victim to start' });
    const [, victimCwd = '', victimUid = ''] = victim;
    // Files a task writes belong to its own unprivileged uid, as the host sees them.
    expect(Number(victimUid)).toBeGreaterThan(65535);
    expect(fs.statSync(path.join(victimCwd, 'secret.txt')).uid).toBe(Number(victimUid));

    const spec = {
      read: ['/etc/shadow', path.join(victimCwd, 'secret.txt'), path.join(head.dataDir, 'raysub.db'), path.join(head.dataDir, 'token')],
      list: [victimCwd, head.dataDir, path.join(head.dataDir, 'agent')],
      write: ['/usr/probe', '/etc/probe', '/probe', '/run/raysub/bin/probe', path.join(head.dataDir, 'probe')],
    };
    const probe = await runCli(['job', 'submit', '--submission-id', 'probe', '--working-dir', dir, '--', 'python3', 'probe.py', JSON.stringify(spec)], { env: head.env });
    expect(probe.code, probe.stderr).toBe(0);
    const r = resultOf<ProbeResult>(probe.stdout);

    for (const p of spec.read) expect(r.read[p], `read ${p}`).toMatch(/^err:/);
    expect(r.list[victimCwd]).toBe('err:FileNotFoundError');
    // Only the path down to its own directory exists: no database, no token, no other task.
    expect(r.list[head.dataDir]).toBe("ok:['agent']");
    expect(r.list[path.dirname(r.cwd)]).toBe(`ok:['${path.basename(r.cwd)}']`);
    expect(r.list['/tmp']).not.toContain('victim-tmp');
    const allowed = [path.join(r.cwd, 'mine.txt'), '/tmp/mine.txt'];
    for (const [p, outcome] of Object.entries(r.write)) expect(outcome, `write ${p}`).toMatch(allowed.includes(p) ? /^ok:1$/ : /^err:/);

    // Its own PID namespace: the bwrap init and itself, nothing of the victim, the agent or the head.
    const cmdlines = Object.values(r.procs).map((p) => p.cmdline);
    expect(cmdlines.join('\n')).not.toContain(marker);
    expect(cmdlines.join('\n')).not.toContain('raysub start');
    expect(Object.keys(r.procs).length).toBeLessThanOrEqual(4);
    expect(r.uid).toBeGreaterThan(65535);
    expect(r.caps).toEqual(['CapEff:\t0000000000000000', 'CapBnd:\t0000000000000000']);
    expect(probe.stdout).not.toContain(head.token);
    // A job may hold a token scoped to itself, never the cluster's.
    expect(r.env.RAYSUB_TOKEN).toBeUndefined();
    expect(Object.values(r.env).join('\n')).not.toContain(head.token);
    // The network is there by default: the job reaches the head.
    expect(r.head).toMatch(/^ok:\d{3}$/);

    const offline = await runCli(
      ['job', 'submit', '--working-dir', dir, '--runtime-env-json', '{"sandbox": {"network": "none"}}', '--', 'python3', 'probe.py', JSON.stringify({ read: [], list: [], write: [] })],
      { env: head.env },
    );
    expect(offline.code, offline.stderr).toBe(0);
    const o = resultOf<ProbeResult>(offline.stdout);
    expect(o.ifaces).toEqual(['lo']);
    expect(o.head).toMatch(/^err:/);

    expect((await runCli(['job', 'stop', 'victim'], { env: head.env })).code).toBe(0);
    await waitFor(() => processesWith(marker).length === 0, { what: 'the victim to be gone' });
  });

  it('keeps a job on a standalone agent from the agent\'s work dir and token', async (ctx) => {
    const head = await startHead({ localAgent: false });
    const name = unique('solo');
    const agent = await startAgent(head, { name, numCpus: 2 });
    await requireSandbox(head, ctx, name);
    const dir = workingDir({ 'probe.py': PROBE });
    // The agent's sandbox state (every task's start file) on the host's tmpfs, where it has one: not inside.
    const state = shmStateDir(agent.workDir);
    const onTmpfs = fs.statfsSync('/dev/shm', { bigint: false }).type === 0x01021994;
    if (onTmpfs) expect(fs.readdirSync(state)).toContain('masked-file');
    const spec = {
      read: [path.join(head.dataDir, 'token'), path.join(head.dataDir, 'raysub.db')],
      list: [agent.workDir, path.join(agent.workDir, 'tasks'), path.join(agent.workDir, 'sandbox'), state, head.dataDir],
      write: [path.join(agent.workDir, 'probe')],
    };
    const probe = await runCli(['job', 'submit', '--working-dir', dir, '--', 'python3', 'probe.py', JSON.stringify(spec)], { env: head.env });
    expect(probe.code, probe.stderr).toBe(0);
    const r = resultOf<ProbeResult>(probe.stdout);
    for (const p of spec.read) expect(r.read[p]).toMatch(/^err:/);
    // Only the paths down to what the job was given exist: none of the agent's own directories.
    for (const own of ['packages', 'unpacked', 'spool', 'sandbox', 'envs']) {
      expect(r.list[agent.workDir]).not.toContain(`'${own}'`);
    }
    // The tasks directory holds one directory per job, the job's one per task of it on this node.
    expect(r.list[path.join(agent.workDir, 'tasks')]).toBe(`ok:['${path.basename(path.dirname(r.cwd))}']`);
    expect(r.list[path.dirname(r.cwd)]).toBe(`ok:['${path.basename(r.cwd)}']`);
    expect(r.list[path.join(agent.workDir, 'sandbox')]).toBe('err:FileNotFoundError');
    expect(r.list[state]).toBe('err:FileNotFoundError');
    expect(r.list[head.dataDir]).toMatch(/^err:/);
    expect(r.write[path.join(agent.workDir, 'probe')]).toMatch(/^err:/);
    // The agent got its token on its command line and in its environment: neither is visible.
    expect(probe.stdout).not.toContain(head.token);
    for (const p of Object.values(r.procs)) expect(p.cmdline).not.toContain('--token');
  });

  it('settles a worker the same way with raysub-init or, where it was not built, setpriv and sh', async (ctx) => {
    const identity = `
import os, resource, sys
status = dict(l.rstrip("\\n").split(":\\t", 1) for l in open("/proc/self/status") if ":\\t" in l)
keys = ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Groups"]
print("ID", os.getuid() > 65535, os.getgid() == os.getuid(), [status[k].strip() for k in keys],
      resource.getrlimit(resource.RLIMIT_NOFILE), resource.getrlimit(resource.RLIMIT_NPROC)[0] > 0,
      os.environ.get("PROBE_VALUE"), os.environ.get("HOME") == os.getcwd(), flush=True)
`;
    const dir = workingDir({ 'id.py': identity });
    const seen: Record<string, string> = {};
    for (const [how, env] of [
      ['raysub-init', {}],
      ['setpriv and sh', { RAYSUB_SANDBOX_INIT: 'none' }],
    ] as const) {
      const head = await startHead({ env });
      await requireSandbox(head, ctx);
      const [node] = await head.client.nodes();
      if (how === 'raysub-init' && !node?.sandbox.detail.includes('raysub-init')) {
        console.warn(`skipping "${ctx.task.name}": raysub-init is not built here (${node?.sandbox.detail})`);
        return ctx.skip();
      }
      expect(node?.sandbox.detail).toContain(`started by ${how}`);
      // A plain interpreter command (exec'd directly by raysub-init) and a shell line.
      for (const entry of [['python3', 'id.py'], ['python3 id.py && true']]) {
        const r = await runCli(['job', 'submit', '--working-dir', dir, '--runtime-env-json', JSON.stringify({ env_vars: { PROBE_VALUE: `v 1 'q' $HOME` } }), '--', ...entry], { env: head.env });
        expect(r.code, r.stderr).toBe(0);
        const line = /^ID .*$/m.exec(r.stdout)?.[0];
        expect(line, r.stdout).toBeDefined();
        seen[`${how}: ${entry.join(' ')}`] = line ?? '';
      }
    }
    const lines = new Set(Object.values(seen));
    expect(lines.size, JSON.stringify(seen, null, 1)).toBe(1);
    expect([...lines][0]).toBe("ID True True ['0000000000000000', '0000000000000000', '0000000000000000', '0000000000000000', '0000000000000000', '1', ''] (4096, 4096) True v 1 'q' $HOME True");
  });

  it('hides the head\'s data dir even inside a path the operator lets workers read', async (ctx) => {
    const shared = tempDir('raysub-shared-');
    fs.chmodSync(shared, 0o755); // a bind keeps its permissions: the task's uid must be able to read it
    fs.writeFileSync(path.join(shared, 'dataset.csv'), 'a,b\n1,2\n');
    const head = await startHead({ dataDir: path.join(shared, 'head'), numCpus: 1, args: ['--sandbox-bind', shared] });
    await requireSandbox(head, ctx);
    const dir = workingDir({ 'probe.py': PROBE });
    const spec = { read: [path.join(shared, 'dataset.csv'), path.join(head.dataDir, 'token'), path.join(head.dataDir, 'raysub.db')], list: [shared, head.dataDir], write: [path.join(shared, 'probe')] };
    const probe = await runCli(['job', 'submit', '--working-dir', dir, '--', 'python3', 'probe.py', JSON.stringify(spec)], { env: head.env });
    expect(probe.code, probe.stderr).toBe(0);
    const r = resultOf<ProbeResult>(probe.stdout);
    expect(r.read[path.join(shared, 'dataset.csv')]).toBe("ok:b'a,b\\n1,2\\n'");
    expect(r.read[path.join(head.dataDir, 'token')]).toMatch(/^err:/);
    expect(r.read[path.join(head.dataDir, 'raysub.db')]).toMatch(/^err:/);
    expect(r.list[head.dataDir]).toBe("ok:['agent']");
    expect(r.write[path.join(shared, 'probe')]).toMatch(/^err:/);
  });

  it("runs a job's consecutive tasks in one sandbox, emptied between them, and a new sandbox per task with --no-sandbox-reuse", async (ctx) => {
    // Each task reports what it finds of the one before, then leaves files, an IPC object and a
    // process behind (the process also holds the task's stdout open).
    const task = `
import ctypes, json, os, subprocess, sys
libc = ctypes.CDLL(None, use_errno=True)
idx = os.environ["RAYSUB_TASK_INDEX"]
marker = sys.argv[1]
cwd = os.getcwd()
res = {
    "mq": [j for j in range(int(idx)) if libc.mq_open(b"/left-by-%d" % j, 0) >= 0],
    "idx": idx, "uid": os.getuid(), "cwd": cwd,
    "ns": os.readlink("/proc/self/ns/pid"),
    "tmp": sorted(os.listdir("/tmp")), "shm": sorted(os.listdir("/dev/shm")),
    "siblings": sorted(os.listdir(os.path.dirname(cwd))),
    "ipc": [l.split()[1] for l in open("/proc/sysvipc/shm").readlines()[1:]],
    "procs": sorted(open("/proc/%s/cmdline" % p, "rb").read().replace(b"\\0", b" ").decode() for p in os.listdir("/proc") if p.isdigit()),
    "home": os.environ.get("HOME"),
}
print("RESULT " + json.dumps(res), flush=True)
open("/tmp/left-by-" + idx, "w").write("x")
open("/dev/shm/left-by-" + idx, "w").write("x")
open("left-by-" + idx, "w").write("x")
libc.shmget(0, 4096, 0o1000 | 0o600)  # IPC_PRIVATE, IPC_CREAT
assert libc.mq_open(("/left-by-" + idx).encode(), 0o100 | 2, 0o600, None) >= 0, "mq_open: errno %d" % ctypes.get_errno()
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", marker])
`;
    type Seen = { idx: string; uid: number; cwd: string; ns: string; mq: number[]; tmp: string[]; shm: string[]; siblings: string[]; ipc: string[]; procs: string[]; home: string };
    const runJob = async (args: string[]): Promise<Seen[]> => {
      const node = unique('reuse');
      const head = await startHead({ numCpus: 1, args: ['--node-name', node, ...args] });
      await requireSandbox(head, ctx);
      const marker = unique('leftover');
      const dir = workingDir({ 'task.py': task });
      const run = await runCli(['job', 'submit', '--parallel', '3', '--working-dir', dir, '--', 'python3', 'task.py', marker], { env: head.env });
      expect(run.code, run.stdout + run.stderr).toBe(0);
      // What a task left running is gone with it, and nothing of it was waited for.
      await waitFor(() => processesWith(marker).length === 0, { what: 'the leftover processes to be gone' });
      const seen = [...run.stdout.matchAll(/RESULT (\{.*\})/g)].map((m) => JSON.parse(m[1] ?? '') as Seen).sort((a, b) => Number(a.idx) - Number(b.idx));
      expect(seen.map((r) => r.idx)).toEqual(['0', '1', '2']);
      return seen;
    };

    const reused = await runJob([]);
    // One sandbox (PID namespace, uid) served the three tasks, one after another...
    expect(new Set(reused.map((r) => r.ns)).size).toBe(1);
    expect(new Set(reused.map((r) => r.uid)).size).toBe(1);
    for (const r of reused) {
      // ...and each found nothing of the task before it: no files, no IPC objects, no processes.
      // (Other names in /tmp are the mount points of paths bound below it, such as this test's; in
      // /dev/shm, the one of the job's object store, raysub-*, holds nothing but the job's directory.)
      expect(r.tmp.filter((n) => n.startsWith('left-by'))).toEqual([]);
      expect(r.shm.filter((n) => !/^raysub-[0-9a-f]+$/.test(n))).toEqual([]);
      expect(r.ipc).toEqual([]);
      expect(r.mq).toEqual([]);
      expect(r.procs.join('\n')).not.toContain('sleep(600)');
      // Its own directory, new, as HOME; the one before it is gone.
      expect(r.siblings).toEqual([path.basename(r.cwd)]);
      expect(r.home).toBe(r.cwd);
    }
    expect(new Set(reused.map((r) => r.cwd)).size).toBe(3);

    const fresh = await runJob(['--no-sandbox-reuse']);
    expect(new Set(fresh.map((r) => r.ns)).size).toBe(3);
    for (const r of fresh) {
      expect(r.tmp.filter((n) => n.startsWith('left-by'))).toEqual([]);
      expect(r.mq).toEqual([]);
    }
  });

  it("runs separate jobs' tasks one after another in one sandbox, each seeing only its own job's directories and nothing the job before left", async (ctx) => {
    // The first job reports, leaves files, an IPC object and a process behind, and ends once the
    // test says so (a file in its directory): the second job, queued behind it on the node's one
    // CPU, is placed the moment it ends.
    const task = `
import ctypes, json, os, subprocess, sys, time
marker, role, others = sys.argv[1], sys.argv[2], sys.argv[3:]
cwd = os.getcwd()
def attempt(fn):
    try:
        return fn()
    except OSError as e:
        return "err:" + os.strerror(e.errno)
res = {
    "ns": os.readlink("/proc/self/ns/pid"), "uid": os.getuid(), "cwd": cwd,
    "injob": os.path.dirname(os.environ["RAYSUB_TASK_SOCKET"]), "objects": os.environ.get("RAYSUB_OBJECT_DIR"),
    "tasks": attempt(lambda: sorted(os.listdir(os.path.dirname(os.path.dirname(cwd))))),
    "injobs": attempt(lambda: sorted(os.listdir(os.path.dirname(os.path.dirname(os.environ["RAYSUB_TASK_SOCKET"]))))),
    "others": [attempt(lambda p=p: sorted(os.listdir(p))) for p in others],
    "jobs": attempt(lambda: os.listdir("/run/raysub/jobs")),
    "tmp": sorted(n for n in os.listdir("/tmp") if n.startswith("left")), "shm": sorted(os.listdir("/dev/shm")),
    "ipc": [l.split()[1] for l in open("/proc/sysvipc/shm").readlines()[1:]],
    "procs": sorted(open("/proc/%s/cmdline" % p, "rb").read().replace(b"\\0", b" ").decode() for p in os.listdir("/proc") if p.isdigit()),
}
print("RESULT " + json.dumps(res), flush=True)
if role == "leave":
    open("/tmp/left", "w").write("x")
    open("/dev/shm/left", "w").write("x")
    ctypes.CDLL(None).shmget(0, 4096, 0o1000 | 0o600)
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", marker], start_new_session=True)
    while not os.path.exists("go"):
        time.sleep(0.05)
`;
    type Seen = { ns: string; uid: number; cwd: string; injob: string; objects: string | null; tasks: string[]; injobs: string[]; others: string[]; jobs: string; tmp: string[]; shm: string[]; ipc: string[]; procs: string[] };
    const node = unique('share');
    const head = await startHead({ numCpus: 1, args: ['--node-name', node] });
    await requireSandbox(head, ctx);
    const marker = unique('left');
    const dir = workingDir({ 'task.py': task });
    const submit = (id: string, args: string[]) => runCli(['job', 'submit', '--no-wait', '--submission-id', id, '--entrypoint-num-cpus', '1', '--working-dir', dir, '--', 'python3', 'task.py', marker, ...args], { env: head.env });
    expect((await submit('share-a', ['leave'])).code).toBe(0);
    const reported = async (): Promise<string | null> => {
      const log = await head.client.getLogs('share-a');
      return log.includes('RESULT') ? log : null;
    };
    const a = resultOf<Seen>(await waitFor(reported, { what: 'the first job to report' }));
    expect((await submit('share-b', ['look', path.dirname(a.cwd), a.injob, ...(a.objects ? [a.objects] : [])])).code).toBe(0);
    await waitFor(async () => (await head.client.getJob('share-b')).status === 'PENDING', { what: 'the second job to wait' });
    fs.writeFileSync(path.join(a.cwd, 'go'), '');
    for (const id of ['share-a', 'share-b']) expect((await head.client.waitForJob(id)).status).toBe('SUCCEEDED');
    const b = resultOf<Seen>(await head.client.getLogs('share-b'));
    await waitFor(() => processesWith(marker).length === 0, { what: 'the leftover process to be gone' });

    // One sandbox ran both jobs' tasks...
    expect(b.ns).toBe(a.ns);
    expect(b.uid).toBe(a.uid);
    // ...each seeing its own job's directories at their host paths, and no other job's.
    expect(a.tasks).toEqual(['share-a']);
    expect(b.tasks).toEqual(['share-b']);
    expect(a.injobs).toEqual([path.basename(a.injob)]);
    expect(b.injobs).toEqual([path.basename(b.injob)]);
    expect(b.injob).not.toBe(a.injob);
    for (const other of b.others) expect(other).toBe('err:No such file or directory');
    expect(b.jobs).toBe('err:Permission denied');
    // Nothing the first job left: files, IPC objects, processes. (In /dev/shm, raysub-* is where
    // the object store's directory of the job is bound.)
    expect(b.tmp).toEqual([]);
    expect(b.shm.filter((n) => !/^raysub-[0-9a-f]+$/.test(n))).toEqual([]);
    expect(b.ipc).toEqual([]);
    expect(b.procs.join('\n')).not.toContain('sleep(600)');
  });

  it('kills detached and daemonised children on job stop and removes the task\'s cgroups', async (ctx) => {
    const node = unique('kill');
    const head = await startHead({ numCpus: 2, args: ['--node-name', node] });
    await requireSandbox(head, ctx);
    const marker = unique('escapee');
    const dir = workingDir({
      'daemon.py': `
import os, subprocess, sys, time
marker = sys.argv[1]
subprocess.Popen(["setsid", "python3", "-c", "import time; time.sleep(600)", marker + "-setsid"])
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execvp("python3", ["python3", "-c", "import time; time.sleep(600)", marker + "-daemon"])
    os._exit(0)
print("spawned", flush=True)
time.sleep(600)
`,
    });
    const submitted = await runCli(['job', 'submit', '--no-wait', '--submission-id', 'escape', '--working-dir', dir, '--', 'python3', 'daemon.py', marker], { env: head.env });
    expect(submitted.code).toBe(0);
    await waitFor(() => processesWith(`${marker}-setsid`).length === 1 && processesWith(`${marker}-daemon`).length === 1, { what: 'the detached children to start' });
    expect(taskCgroups(node).length).toBeGreaterThan(0);

    const stop = await runCli(['job', 'stop', 'escape'], { env: head.env });
    expect(stop.code).toBe(0);
    await waitFor(() => processesWith(marker).length === 0, { what: 'every process of the job to be gone', timeoutMs: 15_000 });
    expect((await head.client.getJob('escape')).status).toBe('STOPPED');
    await waitFor(() => taskCgroups(node).length === 0, { what: 'the task\'s cgroups to be removed' });
  });
});
