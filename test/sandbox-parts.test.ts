/**
 * The sandbox's pure parts, on real files and real shells: mount planning, what is hidden and
 * refused, CPU pinning, the start script's quoting, raysub-init's start file and the commands it
 * execs directly, uid blocks, cgroup mount discovery, GPU nodes.
 */
import { execFileSync, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { applyLimits } from '../src/agent/sandbox/cgroupLimits.js';
import { findCgroupMounts, type Hierarchy } from '../src/agent/sandbox/cgroupMounts.js';
import { ownerTag, startTime } from '../src/agent/sandbox/cgroupOwner.js';
import { AgentCgroups } from '../src/agent/sandbox/cgroups.js';
import { enableV2, parseControllers, V2_CONTROLLERS, v2Wanted } from '../src/agent/sandbox/cgroupV2.js';
import { CpuPinner, parseCpuList, siblingPinnedCpus } from '../src/agent/sandbox/cpus.js';
import { gpuDeviceNodes } from '../src/agent/sandbox/gpus.js';
import { directArgv, findInit, INIT_FORMAT, initStartFile } from '../src/agent/sandbox/init.js';
import { passwdFile, uidBlockFor, UidPool, UIDS_PER_AGENT } from '../src/agent/sandbox/identity.js';
import { bwrapOptions, planLayout, unreadableEntries } from '../src/agent/sandbox/layout.js';
import { MountPlan } from '../src/agent/sandbox/mountPlan.js';
import { SECCOMP_RULES, seccompProgram, type RuleGroup, type SeccompArch } from '../src/agent/sandbox/seccomp.js';
import { startScript } from '../src/agent/sandbox/startScript.js';
import { taskEnv } from '../src/agent/sandbox/taskEnv.js';
import { taskLimits } from '../src/agent/sandbox/limits.js';
import { tempDir, waitFor } from './helpers/cluster.js';

describe('mount planning', () => {
  it('creates missing parents 0755 once, and none inside a host bind', () => {
    const plan = new MountPlan().roBind('/usr').tmpfs('/tmp', '1777').bind('/tmp/a/b/task').roBind('/usr/lib/x').roBind('/opt/py/3.11');
    const text = plan.args.join(' ');
    expect(text).toContain('--perms 0755 --dir /tmp/a --perms 0755 --dir /tmp/a/b --bind /tmp/a/b/task /tmp/a/b/task');
    expect(text).toContain('--perms 0755 --dir /opt --perms 0755 --dir /opt/py --ro-bind /opt/py/3.11');
    expect(text).not.toContain('--dir /usr');
    expect(plan.coveredByBind('/usr/share/zoneinfo')).toBe(true);
    expect(plan.coveredByBind('/tmp/other')).toBe(false);
  });

  it('hides the work dir and data dirs below bound paths, refuses binds that would expose them', () => {
    const root = tempDir('raysub-layout-');
    const prefix = path.join(root, 'opt', 'python');
    const work = path.join(prefix, 'agent-work');
    fs.mkdirSync(work, { recursive: true });
    fs.mkdirSync(path.join(root, 'home'));
    const layout = planLayout({
      interpreters: [{ name: 'python3', exe: path.join(prefix, 'bin', 'python3'), prefixes: [prefix], version: '3' }],
      extraBinds: [root, path.join(root, 'home', 'x'), path.join(root, 'missing')],
      hidden: [work],
      home: path.join(root, 'home'),
      maskFile: '/dev/null',
      maskDir: root,
      systemDirs: [],
    });
    expect(layout.roBinds).toEqual([prefix]);
    expect(layout.refused.join('\n')).toMatch(/contains the agent's home/);
    expect(layout.refused.join('\n')).toMatch(/missing: does not exist/);
    expect(layout.masks).toContainEqual({ path: work, dir: true });
    const files = { passwd: '/p', group: '/g', start: '/s' };
    const args = bwrapOptions(layout, { cwd: path.join(work, 'tasks', 't1'), readOnlyPaths: [], network: 'none', ...files, init: null, devices: [], ownUid: false }).join(' ');
    expect(args).toContain(`--perms 0755 --tmpfs ${work}`);
    // Binds land on top of the fresh /tmp, not under it.
    expect(args.indexOf('--tmpfs /tmp ')).toBeGreaterThanOrEqual(0);
    expect(args.indexOf('--tmpfs /tmp ')).toBeLessThan(args.indexOf(`--ro-bind ${prefix} ${prefix}`));
    expect(args.indexOf(`--tmpfs ${work}`)).toBeLessThan(args.indexOf(`--bind ${work}/tasks/t1`));
    expect(args).toContain('--unshare-net');
    expect(() => bwrapOptions(layout, { cwd: '/x', readOnlyPaths: [prefix], network: 'host', ...files, init: null, devices: [], ownUid: false })).toThrow(/refusing to expose/);
  });

  it('finds secrets other users may not read', () => {
    const dir = tempDir('raysub-etc-');
    fs.writeFileSync(path.join(dir, 'shadow'), 'root:x', { mode: 0o640 });
    fs.writeFileSync(path.join(dir, 'hosts'), '127.0.0.1', { mode: 0o644 });
    fs.mkdirSync(path.join(dir, 'ssl'));
    fs.mkdirSync(path.join(dir, 'ssl', 'private'));
    fs.chmodSync(path.join(dir, 'ssl', 'private'), 0o700);
    const found = unreadableEntries(dir).map((m) => path.relative(dir, m.path)).sort();
    expect(found).toEqual(['shadow', path.join('ssl', 'private')]);
  });
});

describe('cpu pinning', () => {
  it('spreads whole CPUs over distinct cores and never gives one CPU to two tasks', () => {
    // Two cores with two threads each: CPUs 0 and 2 share core a, 1 and 3 core b.
    const pinner = new CpuPinner([0, 1, 2, 3], new Map([[0, 'a'], [2, 'a'], [1, 'b'], [3, 'b']]));
    expect(pinner.take(2)).toEqual([0, 1]);
    expect(pinner.take(3)).toBeNull();
    const second = pinner.take(2);
    expect(second).toEqual([2, 3]);
    expect(pinner.take(1)).toBeNull();
    pinner.give(second ?? []);
    expect(pinner.take(0.5)).toBeNull();
    expect(parseCpuList('0-2,5,7-8\n')).toEqual([0, 1, 2, 5, 7, 8]);
  });

  it('leaves CPUs that other agents on the machine pinned to their tasks', () => {
    // <cpuset>/raysub/<agent>/<task>/cpuset.cpus, as the cgroup tree lays it out.
    const top = tempDir();
    const write = (rel: string, cpus: string) => {
      fs.mkdirSync(path.join(top, rel), { recursive: true });
      fs.writeFileSync(path.join(top, rel, 'cpuset.cpus'), cpus + '\n');
    };
    write('other-1/task-a', '1');
    write('other-1/task-b', '0-3'); // not pinned: it has every CPU
    write('mine-2/task-c', '2');
    const elsewhere = siblingPinnedCpus(path.join(top, 'mine-2'), [0, 1, 2, 3]);
    expect([...elsewhere]).toEqual([1]);
    const pinner = new CpuPinner([0, 1, 2, 3], new Map(), () => elsewhere);
    expect(pinner.take(3)).toEqual([0, 2, 3]);
    expect(pinner.take(1)).toBeNull();
  });
});

describe('start script', () => {
  it('round-trips any environment through a real shell, with limits set', () => {
    const env = { PLAIN: 'x', QUOTES: `it's "quoted" $HOME \`id\``, NEWLINE: 'a\nb', 'DOTTED.NAME': 'v', UID: '7', EMPTY: '' };
    const probe = 'import json,os,resource; print(json.dumps([dict(os.environ), resource.getrlimit(resource.RLIMIT_NOFILE)]))';
    const dir = tempDir('raysub-start-');
    const run = (script: string): [Record<string, string>, number[]] => {
      fs.writeFileSync(path.join(dir, 'start'), script);
      // fd 4 is where the script reports readiness; give it somewhere to write.
      const out = execFileSync('/bin/sh', ['-c', `/bin/sh ${path.join(dir, 'start')} 4>/dev/null`], { env: {}, encoding: 'utf8' });
      return JSON.parse(out) as [Record<string, string>, number[]];
    };
    // Any argv is exec'd; names a shell cannot export go through env(1).
    const [seen, nofile] = run(startScript(env, [{ name: 'nofile', value: 300 }], '/usr/bin/env', ['python3', '-c', probe]));
    for (const [k, v] of Object.entries(env)) expect(seen[k]).toBe(v);
    expect(nofile).toEqual([300, 300]);

    // A `/bin/sh -c LINE` worker's line becomes the rest of the script: same environment, one exec fewer.
    const plain = { PLAIN: 'x', QUOTES: env.QUOTES };
    const tail = startScript(plain, [{ name: 'nofile', value: 200 }], null, ['/bin/sh', '-c', `python3 -c '${probe}'`]);
    expect(tail.trimEnd().endsWith(`python3 -c '${probe}'`)).toBe(true);
    const [seen2, nofile2] = run(tail);
    expect(seen2).toMatchObject(plain);
    expect(nofile2).toEqual([200, 200]);
  });

  it('puts interpreter links after the job\'s own directories and tells Node its heap', () => {
    const env = taskEnv(
      { key: 'k', argv: [], cwd: '/w/t', env: { PATH: '/envs/venv/bin:/usr/bin:/bin', NODE_OPTIONS: '--enable-source-maps' }, resources: { cpus: 1, gpus: 0, memory: 512 * 2 ** 20, custom: {} }, gpuIds: [], network: 'host', readOnlyPaths: ['/envs/venv'] },
      { sandboxed: true, user: 'raysub', binDir: '/run/raysub/bin' },
    );
    expect(env.PATH).toBe('/envs/venv/bin:/run/raysub/bin:/usr/bin:/bin');
    expect(env.NODE_OPTIONS).toBe('--enable-source-maps --max-old-space-size=384');
    expect(env).toMatchObject({ HOME: '/w/t', TMPDIR: '/tmp', USER: 'raysub' });
  });
});

describe('identity', () => {
  it('gives each agent its own block of uids, inside the mapped range only', () => {
    const full = '         0          0 4294967295';
    const a = uidBlockFor(1000, full);
    const b = uidBlockFor(1001, full);
    expect(a).not.toBeNull();
    expect(Math.abs((a ?? 0) - (b ?? 0))).toBeGreaterThanOrEqual(UIDS_PER_AGENT);
    expect(uidBlockFor(1000, '0 100000 65536')).toBeNull();
    const pool = new UidPool(a ?? 0, { size: 2 });
    const u1 = pool.take() ?? -1;
    const u2 = pool.take() ?? -1;
    expect(u2).not.toBe(u1);
    // Exhausted: null, for the launcher to report as NODE_AT_CAPACITY; never a throw.
    expect(pool.take()).toBeNull();
    pool.give(u1);
    expect(pool.take()).toBe(u1);
    expect(passwdFile({ uid: u2, gid: u2, name: 'raysub', home: '/w' })).toMatch(new RegExp(`^raysub:x:${u2}:${u2}:`, 'm'));
  });
});

describe('cgroup roots', () => {
  it('collects other agents\' roots that are idle and old, never busy or fresh ones', async (ctx) => {
    const mount = findCgroupMounts(fs.readFileSync('/proc/self/mountinfo', 'utf8')).v1.pids;
    if (!mount || process.getuid?.() !== 0) {
      console.warn(`skipping "${ctx.task.name}": needs root and a cgroup v1 pids hierarchy`);
      return ctx.skip();
    }
    const top = path.join(mount, 'raysub');
    fs.mkdirSync(top, { recursive: true });
    const tag = crypto.randomBytes(3).toString('hex');
    const stale = path.join(top, `zz-stale-${tag}`);
    const fresh = path.join(top, `zz-fresh-${tag}`);
    const busy = path.join(top, `zz-busy-${tag}`);
    for (const d of [path.join(stale, 'task'), fresh, path.join(busy, 'task')]) fs.mkdirSync(d, { recursive: true });
    const old = new Date(Date.now() - 5 * 60_000);
    for (const d of [path.join(stale, 'task'), stale, path.join(busy, 'task'), busy]) fs.utimesSync(d, old, old);
    const sleeper = spawn('sleep', ['60'], { stdio: 'ignore' });
    onTestFinished(() => {
      sleeper.kill('SIGKILL');
      for (const d of [path.join(busy, 'task'), busy, fresh]) {
        try {
          fs.rmdirSync(d);
        } catch {
          // already collected
        }
      }
    });
    await new Promise((r) => sleeper.once('spawn', r));
    fs.writeFileSync(path.join(busy, 'task', 'cgroup.procs'), String(sleeper.pid));

    const { cgroups } = AgentCgroups.open({ v1: { pids: mount }, unified: null }, `zz-me-${tag}`);
    onTestFinished(() => cgroups?.close());
    expect(fs.existsSync(stale)).toBe(false);
    expect(fs.existsSync(fresh)).toBe(true);
    expect(fs.existsSync(path.join(busy, 'task'))).toBe(true);

    // Once its process is gone, the old tree is idle: the next agent to start collects it.
    sleeper.kill('SIGKILL');
    await new Promise((r) => sleeper.once('exit', r));
    await waitFor(() => fs.readFileSync(path.join(busy, 'task', 'cgroup.procs'), 'utf8').trim() === '', { what: 'the sleeper to leave its cgroup' });
    AgentCgroups.open({ v1: { pids: mount }, unified: null }, `zz-me-${tag}`).cgroups?.close();
    expect(fs.existsSync(busy)).toBe(false);
  });
});

describe('cgroup roots of agents that are gone', () => {
  it("removes a dead agent's root and kills what it left running, and never touches a live agent's", async (ctx) => {
    const mount = findCgroupMounts(fs.readFileSync('/proc/self/mountinfo', 'utf8')).v1.pids;
    if (!mount || process.getuid?.() !== 0 || !ownerTag()) {
      console.warn(`skipping "${ctx.task.name}": needs root, /proc and a cgroup v1 pids hierarchy`);
      return ctx.skip();
    }
    const top = path.join(mount, 'raysub');
    fs.mkdirSync(top, { recursive: true });
    const tag = crypto.randomBytes(3).toString('hex');
    const sleep = async (): Promise<ReturnType<typeof spawn>> => {
      const p = spawn('sleep', ['60'], { stdio: 'ignore' });
      onTestFinished(() => void p.kill('SIGKILL'));
      await new Promise((r) => p.once('spawn', r));
      return p;
    };
    // A dead owner: a process that has exited (its pid and start time name no live process).
    const gone = await sleep();
    const goneTag = ownerTag(gone.pid);
    gone.kill('SIGKILL');
    await new Promise((r) => gone.once('exit', r));
    const dead = path.join(top, `zz-dead-${tag}@${goneTag}`);
    // A live owner: a running process, its root fresh... and one idle for long: still not ours to take.
    const liveOwner = await sleep();
    const live = path.join(top, `zz-live-${tag}@${ownerTag(liveOwner.pid)}`);
    for (const d of [path.join(dead, 'task'), path.join(live, 'task')]) fs.mkdirSync(d, { recursive: true });
    onTestFinished(() => {
      for (const d of [path.join(live, 'task'), live, path.join(dead, 'task'), dead]) {
        try {
          fs.rmdirSync(d);
        } catch {
          // removed by the test, or by the sweep
        }
      }
    });
    const old = new Date(Date.now() - 5 * 60_000);
    fs.utimesSync(live, old, old);
    // What the dead agent left running, and what the live one runs.
    const orphan = await sleep();
    const orphanEnd = new Promise((r) => orphan.once('exit', (_code, signal) => r(signal)));
    const working = await sleep();
    fs.writeFileSync(path.join(dead, 'task', 'cgroup.procs'), String(orphan.pid));
    fs.writeFileSync(path.join(live, 'task', 'cgroup.procs'), String(working.pid));

    const { cgroups } = AgentCgroups.open({ v1: { pids: mount }, unified: null }, `zz-me-${tag}@${ownerTag()}`);
    onTestFinished(() => cgroups?.close());
    expect(fs.existsSync(dead)).toBe(false);
    expect(await orphanEnd).toBe('SIGKILL');
    expect(fs.readFileSync(path.join(live, 'task', 'cgroup.procs'), 'utf8').trim()).toBe(String(working.pid));
    expect(startTime(working.pid ?? 0)).not.toBeNull();
    working.kill('SIGKILL');
    await waitFor(() => fs.readFileSync(path.join(live, 'task', 'cgroup.procs'), 'utf8').trim() === '', { what: 'the live task to end' });
    fs.rmdirSync(path.join(live, 'task'));
    fs.rmdirSync(live);
  });
});

describe('cgroup v2', () => {
  const limits = taskLimits({ resources: { cpus: 1.5, gpus: 0, memory: 256 * 2 ** 20, custom: {} }, cpusetCpus: [1], deviceRules: ['c 1:3 rwm'], pidsMax: 99, openFiles: 64, ownUid: true, seccomp: null });

  it('writes the same limits in v2 files for the controllers enabled there, and v1 files for v1 hierarchies', () => {
    const v2 = tempDir('raysub-cg2-');
    applyLimits('unified', v2, limits, { mems: '0', allCpus: [0, 1], v2: new Set(V2_CONTROLLERS) });
    const files = Object.fromEntries(fs.readdirSync(v2).map((f) => [f, fs.readFileSync(path.join(v2, f), 'utf8')]));
    expect(files).toEqual({ 'memory.max': String(256 * 2 ** 20), 'memory.swap.max': '0', 'cpu.weight': '150', 'cpu.max': '150000 100000', 'cpuset.cpus': '1', 'pids.max': '99' });

    // A controller not enabled on cgroup2 writes nothing there; no memory request, no memory limit.
    const partial = tempDir('raysub-cg2-');
    applyLimits('unified', partial, { ...limits, memoryBytes: 0, cpusetCpus: null }, { mems: '0', allCpus: [0, 1], v2: new Set(['memory', 'cpuset'] as const) });
    expect(fs.readdirSync(partial)).toEqual(['cpuset.cpus']);
    expect(fs.readFileSync(path.join(partial, 'cpuset.cpus'), 'utf8')).toBe('\n'); // back to the parent's CPUs

    const v1 = tempDir('raysub-cg1-');
    for (const h of ['memory', 'cpu', 'cpuset', 'pids', 'devices'] as const) applyLimits(h, v1, limits, { mems: '0', allCpus: [0, 1], v2: new Set() });
    expect(fs.readFileSync(path.join(v1, 'memory.limit_in_bytes'), 'utf8')).toBe(String(256 * 2 ** 20));
    expect(fs.readFileSync(path.join(v1, 'cpu.cfs_quota_us'), 'utf8')).toBe('150000');
    expect(fs.readFileSync(path.join(v1, 'pids.max'), 'utf8')).toBe('99');
  });

  it("writes a task cgroup's limits again only where they changed, and its cpuset every time", () => {
    const limits = taskLimits({ resources: { cpus: 1, gpus: 0, memory: 0, custom: {} }, cpusetCpus: [1], deviceRules: ['c 1:3 rwm', 'c 1:5 rwm'], pidsMax: 99, openFiles: 64, ownUid: true, seccomp: null });
    const scope = { mems: '0', allCpus: [0, 1], v2: new Set(V2_CONTROLLERS) };
    const dir = tempDir('raysub-cg-again-');
    const last = new Map<Hierarchy, string>();
    const mark = () => {
      for (const f of fs.readdirSync(dir)) fs.writeFileSync(path.join(dir, f), 'left');
    };
    const files = () => Object.fromEntries(fs.readdirSync(dir).map((f) => [f, fs.readFileSync(path.join(dir, f), 'utf8')]));
    for (const h of ['devices', 'pids', 'cpuset'] as const) applyLimits(h, dir, limits, scope, last);
    expect(files()).toEqual({ 'devices.deny': 'a', 'devices.allow': 'c 1:5 rwm', 'pids.max': '99', 'cpuset.mems': '0', 'cpuset.cpus': '1' });
    // The same limits: only the cpuset is written again.
    mark();
    for (const h of ['devices', 'pids', 'cpuset'] as const) applyLimits(h, dir, limits, scope, last);
    expect(files()).toEqual({ 'devices.deny': 'left', 'devices.allow': 'left', 'pids.max': 'left', 'cpuset.mems': '0', 'cpuset.cpus': '1' });
    // Other device rules: the whole list again; the unchanged pids limit is left.
    mark();
    for (const h of ['devices', 'pids'] as const) applyLimits(h, dir, { ...limits, deviceRules: ['c 1:3 rwm'] }, scope, last);
    expect(files()).toMatchObject({ 'devices.deny': 'a', 'devices.allow': 'c 1:3 rwm', 'pids.max': 'left' });
    // A write that failed is made again next time.
    const gone = tempDir('raysub-cg-gone-');
    fs.rmSync(gone, { recursive: true });
    expect(() => applyLimits('pids', gone, { ...limits, pidsMax: 7 }, scope, last)).toThrow();
    applyLimits('pids', dir, { ...limits, pidsMax: 7 }, scope, last);
    expect(fs.readFileSync(path.join(dir, 'pids.max'), 'utf8')).toBe('7');
  });

  it('wants on cgroup2 the controllers its root offers and no v1 hierarchy holds', () => {
    expect(parseControllers('cpuset cpu io memory hugetlb pids rdma\n')).toEqual(new Set(['cpuset', 'cpu', 'io', 'memory', 'hugetlb', 'pids', 'rdma']));
    // A cgroup2-only host (systemd's default): all four.
    expect(v2Wanted(parseControllers('cpuset cpu io memory pids'), {})).toEqual(['memory', 'cpu', 'cpuset', 'pids']);
    // A hybrid host: what v1 holds stays there.
    expect(v2Wanted(parseControllers('cpuset cpu memory pids'), { memory: '/sys/fs/cgroup/memory', cpu: '/sys/fs/cgroup/cpu' })).toEqual(['cpuset', 'pids']);
    // This kind of machine: every controller on v1, cgroup2 offers none of them.
    expect(v2Wanted(parseControllers('hugetlb'), { memory: 'm', cpu: 'c', cpuset: 's', pids: 'p' })).toEqual([]);
  });

  it('on this machine: says which limits hold where, and what its cgroup2 hierarchy cannot carry', (ctx) => {
    const mounts = findCgroupMounts(fs.readFileSync('/proc/self/mountinfo', 'utf8'));
    if (!mounts.unified || process.getuid?.() !== 0) {
      console.warn(`skipping "${ctx.task.name}": needs root and a cgroup2 hierarchy`);
      return ctx.skip();
    }
    const offered = parseControllers(fs.readFileSync(path.join(mounts.unified, 'cgroup.controllers'), 'utf8'));
    // Asking cgroup2 for what it does not offer writes nothing and says why.
    const missing = V2_CONTROLLERS.filter((c) => !offered.has(c));
    const asked = enableV2(mounts.unified, [], missing);
    expect(asked.enabled.size).toBe(0);
    expect(asked.problems).toEqual(missing.map((c) => `cgroup2: no ${c} controller offered at ${mounts.unified}`));

    const { cgroups, problems } = AgentCgroups.open(mounts, `zz-v2-${crypto.randomBytes(3).toString('hex')}@${ownerTag()}`);
    onTestFinished(() => cgroups?.close());
    for (const l of ['memory', 'cpu', 'cpuset', 'pids'] as const) {
      const want = mounts.v1[l] ? 'v1' : offered.has(l) ? 'v2' : null;
      expect(cgroups?.via(l), l).toBe(want);
      if (!want) expect(problems.join('\n')).toContain(`no ${l} limit`);
    }
    console.log(`this machine: ${cgroups?.describe() ?? 'no cgroups'}; cgroup2 offers "${[...offered].join(' ')}"`);
  });
});

describe('machine discovery', () => {
  it('reads cgroup v1 controllers and the cgroup2 mount from mountinfo', () => {
    const info = [
      '32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct',
      '35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory',
      '41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw',
      '42 31 0:39 / /mnt/with\\040space rw - cgroup cgroup rw,pids',
    ].join('\n');
    expect(findCgroupMounts(info)).toEqual({
      v1: { cpu: '/sys/fs/cgroup/cpu,cpuacct', memory: '/sys/fs/cgroup/memory', pids: '/mnt/with space' },
      unified: '/sys/fs/cgroup/unified',
    });
  });

  it('exposes only the device nodes of the GPUs a task holds', () => {
    const dev = tempDir('raysub-dev-');
    for (const n of ['nvidiactl', 'nvidia-uvm', 'nvidia0', 'nvidia1', 'nvidia2', 'sda']) fs.writeFileSync(path.join(dev, n), '');
    expect(gpuDeviceNodes(dev, [])).toEqual([]);
    expect(gpuDeviceNodes(dev, [1, 2]).map((p) => path.basename(p))).toEqual(['nvidiactl', 'nvidia-uvm', 'nvidia1', 'nvidia2']);
  });
});

describe('raysub-init', () => {
  const interpreters = new Set(['python3', 'node']);

  it('execs plain interpreter command lines directly and leaves everything else to the shell', () => {
    expect(directArgv(['/bin/sh', '-c', 'python3 -c pass'], interpreters)).toEqual(['python3', '-c', 'pass']);
    expect(directArgv(['/bin/sh', '-c', ' node  app.js --port=8080 '], interpreters)).toEqual(['node', 'app.js', '--port=8080']);
    for (const line of ['python3 "a b.py"', 'python3 $X', 'python3 a.py > out', 'python3 a.py; echo', 'A=1 python3 a.py', 'python3 ~/a.py', 'python3 a*.py', 'python3 a.py #x', 'bash -c x', 'exit 3', 'python3 a.py &']) {
      expect(directArgv(['/bin/sh', '-c', line], interpreters), line).toBeNull();
    }
    expect(directArgv(['python3', 'a.py'], interpreters)).toBeNull();
  });

  it('refuses a NUL byte where a C string ends', () => {
    expect(() => initStartFile({ env: { A: 'x\0y' }, rlimits: [], uid: null, argv: ['true'] })).toThrow(/NUL/);
  });

  it('sets limits and environment, reports ready on fd 4, then execs the command with the task\'s PATH', async (ctx) => {
    const init = findInit();
    if (!init.path) {
      console.warn(`skipping "${ctx.task.name}": ${init.why}`);
      return ctx.skip();
    }
    const dir = tempDir('raysub-init-');
    const bin = path.join(dir, 'bin');
    fs.mkdirSync(bin);
    fs.writeFileSync(path.join(bin, 'show'), '#!/bin/sh\nprintf "%s|%s|%s|%s|%s" "$0" "$1" "$ODD_NAME_X" "$(ulimit -n)" "$(grep NoNewPrivs /proc/self/status | tr -d "\\t ")"\n', { mode: 0o755 });
    const start = path.join(dir, 'start');
    const run = async (file: Buffer): Promise<{ code: number | null; out: string; err: string; ready: string }> => {
      fs.writeFileSync(start, file);
      const child = spawn(init.path!, [start], { stdio: ['ignore', 'pipe', 'pipe', 'ignore', 'pipe'] });
      let out = '';
      let err = '';
      let ready = '';
      child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
      (child.stdio[4] as NodeJS.ReadableStream).on('data', (d: Buffer) => (ready += d.toString()));
      const code = await new Promise<number | null>((r) => child.once('close', (c) => r(c)));
      return { code, out, err, ready };
    };
    // Names a shell cannot export travel too; PATH is the task's, not the caller's.
    const ok = await run(initStartFile({ env: { PATH: `${bin}:/usr/bin:/bin`, 'ODD_NAME_X': 'v 1' }, rlimits: [{ name: 'nofile', value: 77 }], uid: null, argv: ['show', 'arg one'] }));
    expect(ok).toEqual({ code: 0, out: `${bin}/show|arg one|v 1|77|NoNewPrivs:1`, err: '', ready: 'ok' });

    // A working directory in the start file (a served sandbox's next task) is entered first.
    const inDir = await run(initStartFile({ env: { PATH: '/usr/bin:/bin' }, rlimits: [{ name: 'nofile', value: 64 }], uid: null, argv: ['pwd'], cwd: bin }));
    expect(inDir).toMatchObject({ code: 0, out: `${bin}\n`, ready: 'ok' });
    const noDir = await run(initStartFile({ env: { PATH: '/usr/bin:/bin' }, rlimits: [{ name: 'nofile', value: 64 }], uid: null, argv: ['pwd'], cwd: path.join(dir, 'gone') }));
    expect(noDir).toMatchObject({ code: 125, ready: '' });
    expect(noDir.err).toContain("cannot enter the task's directory");

    const missing = await run(initStartFile({ env: { PATH: bin }, rlimits: [{ name: 'nofile', value: 64 }], uid: null, argv: ['no-such-command'] }));
    expect(missing).toMatchObject({ code: 127, ready: 'ok', err: 'raysub: no-such-command: not found\n' });

    // One stream: the worker's stderr is its stdout, in the order it wrote (its own failure too).
    const merged = await run(initStartFile({ env: { PATH: '/usr/bin:/bin' }, rlimits: [], uid: null, argv: ['sh', '-c', 'echo one; echo two >&2; echo three'], mergeStderr: true }));
    expect(merged).toEqual({ code: 0, out: 'one\ntwo\nthree\n', err: '', ready: 'ok' });
    const mergedMissing = await run(initStartFile({ env: { PATH: bin }, rlimits: [], uid: null, argv: ['no-such-command'], mergeStderr: true }));
    expect(mergedMissing).toMatchObject({ code: 127, out: 'raysub: no-such-command: not found\n', err: '' });

    fs.writeFileSync(start, 'not a start file');
    const bad = await run(Buffer.from('raysub-init 9\0'));
    expect(bad).toMatchObject({ code: 125, ready: '' });
    expect(bad.err).toContain(`not in ${INIT_FORMAT} format`);
  });
});

/** Run a classic BPF seccomp program, as the kernel would, on one system call. */
function runFilter(prog: Buffer, call: { arch: number; nr: number; arg0?: number }): number {
  const data = Buffer.alloc(64);
  data.writeUInt32LE(call.nr >>> 0, 0);
  data.writeUInt32LE(call.arch >>> 0, 4);
  data.writeUInt32LE((call.arg0 ?? 0) >>> 0, 16);
  let acc = 0;
  for (let pc = 0; pc * 8 < prog.length; pc++) {
    const code = prog.readUInt16LE(pc * 8);
    const [jt, jf, k] = [prog.readUInt8(pc * 8 + 2), prog.readUInt8(pc * 8 + 3), prog.readUInt32LE(pc * 8 + 4)];
    if (code === 0x20) acc = data.readUInt32LE(k);
    else if (code === 0x06) return k;
    else {
      const taken = code === 0x15 ? acc === k : code === 0x35 ? acc >= k : code === 0x45 ? (acc & k) !== 0 : null;
      if (taken === null) throw new Error(`unknown instruction ${code}`);
      pc += taken ? jt : jf;
    }
  }
  throw new Error('fell off the end of the program');
}

describe('seccomp filter', () => {
  const ALLOW = 0x7fff0000;
  const EPERM = 0x50001;
  const arches: [SeccompArch, number][] = [
    ['x64', 0xc000003e],
    ['arm64', 0xc00000b7],
  ];

  it('refuses each listed call of the groups it is built for, allows the rest, and kills foreign architectures', () => {
    for (const [arch, audit] of arches) {
      for (const groups of [['default', 'namespaces'], ['namespaces'], ['default']] as RuleGroup[][]) {
        const prog = seccompProgram(new Set(groups), arch);
        if (!prog) throw new Error('no program');
        for (const r of SECCOMP_RULES) {
          const nr = r.nr[arch];
          if (nr === undefined) continue;
          const arg0 = r.arg0In?.[0] ?? r.arg0Bits ?? 0;
          const want = !groups.includes(r.group) ? ALLOW : r.enosys ? 0x50026 : EPERM;
          expect(runFilter(prog, { arch: audit, nr, arg0 }), `${arch} ${groups.join('+')} ${r.name}`).toBe(want);
        }
        // read, write, and the argument-checked calls with harmless arguments.
        for (const nr of [0, 1, 63]) expect(runFilter(prog, { arch: audit, nr })).toBe(ALLOW);
        expect(runFilter(prog, { arch: audit, nr: arch === 'x64' ? 101 : 117, arg0: 0 }), 'PTRACE_TRACEME').toBe(ALLOW);
        expect(runFilter(prog, { arch: audit, nr: arch === 'x64' ? 56 : 220, arg0: 0x01200011 }), 'clone as fork does it').toBe(ALLOW);
        expect(runFilter(prog, { arch: 0x40000003, nr: 0 }), 'i386').toBe(0x80000000);
      }
    }
    expect(runFilter(seccompProgram(new Set(['default']), 'x64') ?? Buffer.alloc(0), { arch: 0xc000003e, nr: 0x40000000 + 1 }), 'x32').toBe(0x80000000);
    expect(seccompProgram(new Set(), 'x64')).toBeNull();
  });
});
