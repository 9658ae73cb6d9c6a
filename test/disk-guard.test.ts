/**
 * Disk pressure: a job that fills its node's disk is killed (DISK_PRESSURE) before the disk is
 * full, the task beside it keeps running, and the node keeps serving. End to end on an agent whose
 * work dir is a small tmpfs of its own (mounting one needs root: the test says so and skips
 * otherwise); the decision itself in process.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { pressureOf, readDisk } from '../src/agent/diskGuard.js';
import { headOptionsFrom } from '../src/shared/config.js';
import { runCli, startAgent, startHead, waitFor, workingDir } from './helpers/cluster.js';
import { unique } from './helpers/sandbox.js';
import { smallDisk } from './helpers/smallDisk.js';

const MiB = 1024 * 1024;

describe('disk pressure, in process', () => {
  const disk = (freeMiB: number, totalMiB = 1000, freeInodes = 1e6, totalInodes = 1e6) => ({ freeBytes: freeMiB * MiB, totalBytes: totalMiB * MiB, freeInodes, totalInodes });
  const cases: [string, ReturnType<typeof disk>, { bytes: number | null; fraction: number | null }, 'bytes' | 'inodes' | null][] = [
    ['plenty of space', disk(500), { bytes: 100 * MiB, fraction: null }, null],
    ['below a size', disk(99), { bytes: 100 * MiB, fraction: null }, 'bytes'],
    ['below a share', disk(49), { bytes: null, fraction: 0.05 }, 'bytes'],
    ['both: the smaller floor (5% of 1000 MiB = 50 MiB, under 100 MiB) applies', disk(60), { bytes: 100 * MiB, fraction: 0.05 }, null],
    ['both, below the smaller', disk(40), { bytes: 100 * MiB, fraction: 0.05 }, 'bytes'],
    ['off (0)', disk(0), { bytes: 0, fraction: null }, null],
    ['out of inodes (1% of 1e6 = 10,000)', disk(500, 1000, 9_999), { bytes: 100 * MiB, fraction: null }, 'inodes'],
    ['a file system with no inode count', disk(500, 1000, 0, 0), { bytes: 100 * MiB, fraction: null }, null],
  ];
  for (const [name, reading, floor, want] of cases) {
    it(name, () => expect(pressureOf(reading, floor)?.kind ?? null).toBe(want));
  }

  it('--min-free-disk takes a size, a share or both, and refuses anything else', () => {
    const opt = (v?: string) => headOptionsFrom(v === undefined ? {} : { minFreeDisk: v }, { path: null, head: {}, agent: {}, client: {} }).localAgent?.minFreeDisk;
    expect(opt()).toEqual({ bytes: 1024 * MiB, fraction: 0.05 });
    expect(opt('2G')).toEqual({ bytes: 2048 * MiB, fraction: null });
    expect(opt('10%')).toEqual({ bytes: null, fraction: 0.1 });
    expect(opt('0')).toEqual({ bytes: 0, fraction: null });
    for (const bad of ['lots', '90%', '', '-1G']) expect(() => opt(bad), bad).toThrow(/min-free-disk/);
  });
});

const HOLDER = `
import os, time
open("mine", "wb").write(b"y" * (20 << 20))
def free():
    s = os.statvfs(".")
    return s.f_bavail * s.f_frsize
print("holding 20 MiB", flush=True)
low = False
deadline = time.monotonic() + 90
while time.monotonic() < deadline:
    f = free()
    if f < (48 << 20):
        low = True
    elif low and f > (100 << 20):
        print("the disk went low and recovered", flush=True)
        break
    time.sleep(0.05)
else:
    raise SystemExit("the disk never went low and back")
`;

/** Fills the disk to 24 MiB free (under the 48 MiB floor, short of ENOSPC), then waits to be killed. */
const FILLER = `
import os, time
def free():
    s = os.statvfs(".")
    return s.f_bavail * s.f_frsize
n = 0
with open("fill", "wb") as f:
    while free() > (24 << 20):
        f.write(b"x" * (1 << 20))
        f.flush()
        n += 1
print("filled", n, "MiB", flush=True)
time.sleep(120)
print("never killed", flush=True)
`;

/** Holds 2 MiB for a few of the guard's looks at the disk. */
const BYSTANDER = `
import time
open("small", "wb").write(b"z" * (2 << 20))
time.sleep(4)
print("ok", flush=True)
`;

describe('disk pressure, end to end', () => {
  it('kills the task filling the disk (DISK_PRESSURE), spares the one beside it, and the node keeps serving', { timeout: 180_000 }, async (ctx) => {
    const mnt = smallDisk(ctx, 'size=160m');
    if (mnt === null) return ctx.skip();
    const head = await startHead({ localAgent: false });
    const node = unique('disk');
    const workDir = path.join(mnt, 'agent');
    await startAgent(head, { name: node, numCpus: 2, workDir, args: ['--min-free-disk', '48M'] });
    const dir = workingDir({ 'holder.py': HOLDER, 'filler.py': FILLER, 'bystander.py': BYSTANDER });
    const submit = (id: string, file: string) => runCli(['job', 'submit', '--no-wait', '--submission-id', id, '--entrypoint-num-cpus', '1', '--working-dir', dir, '--', 'python3', file], { env: head.env });

    expect((await submit('holder', 'holder.py')).code).toBe(0);
    await waitFor(async () => (await head.client.getLogs('holder')).includes('holding 20 MiB'), { what: 'the holder to hold its 20 MiB', timeoutMs: 60_000 });
    expect((await submit('filler', 'filler.py')).code).toBe(0);

    const filler = await head.client.waitForJob('filler', { timeoutMs: 90_000 });
    const logs = await head.client.getLogs('filler');
    expect(logs, logs).toContain('filled');
    expect(logs).not.toContain('never killed');
    expect(filler).toMatchObject({ status: 'FAILED', raysub: { error_type: 'DISK_PRESSURE' } });
    expect(filler.raysub.message).toMatch(/evicted: the node's disk had .* free \(its floor is 48\.0 MiB, --min-free-disk\) and this task's working directory and unsent output held .*, the most of any task on the node/);
    expect(logs).toMatch(/\[raysub\] evicted/);

    const holder = await head.client.waitForJob('holder', { timeoutMs: 90_000 });
    expect(holder.status, await head.client.getLogs('holder')).toBe('SUCCEEDED');
    expect(await head.client.getLogs('holder')).toContain('the disk went low and recovered');
    // The filler's directory went with it: the disk is back.
    await waitFor(async () => (await readDisk(mnt)).freeBytes > 100 * MiB, { what: 'the disk to be freed' });

    // Something else fills the disk: no task holds much of it, so none is killed for it.
    const outsider = path.join(mnt, 'outsider');
    fs.writeFileSync(outsider, Buffer.alloc((await readDisk(mnt)).freeBytes - 30 * MiB, 1));
    expect((await readDisk(mnt)).freeBytes).toBeLessThan(48 * MiB);
    expect((await submit('bystander', 'bystander.py')).code).toBe(0);
    const bystander = await head.client.waitForJob('bystander', { timeoutMs: 60_000 });
    expect(bystander.status, await head.client.getLogs('bystander')).toBe('SUCCEEDED');
    fs.rmSync(outsider);

    expect((await head.client.nodes()).find((n) => n.node_name === node)?.state).toBe('ALIVE');
  });

  it('counts the output an agent keeps for a task while its head is away', { timeout: 180_000 }, async (ctx) => {
    const mnt = smallDisk(ctx, 'size=160m');
    if (mnt === null) return ctx.skip();
    // No log cap: the agent must keep all of it, and the disk guard counts it.
    const head = await startHead({ localAgent: false, args: ['--max-log-size', '0'] });
    await startAgent(head, { name: unique('spool'), numCpus: 2, workDir: path.join(mnt, 'agent'), args: ['--min-free-disk', '48M'] });
    const dir = workingDir({
      'talk.py': `
import os, sys, time
open("started", "w").close()
while not os.path.exists("go"):
    time.sleep(0.05)
line = b"x" * 1023 + b"\\n"
for i in range(140 * 1024):
    sys.stdout.buffer.write(line)
sys.stdout.flush()
time.sleep(120)
`,
    });
    const taskDir = await startTalker(head, mnt, dir);
    // The head goes quiet: the task's output waits on the agent's disk.
    const resume = pauseHead(head.pid);
    fs.writeFileSync(path.join(path.dirname(taskDir), 'go'), '');
    await waitFor(() => !fs.existsSync(taskDir), { what: 'the talker to be evicted', timeoutMs: 90_000 });
    resume();
    const job = await head.client.waitForJob('talker', { timeoutMs: 90_000 });
    expect(job).toMatchObject({ status: 'FAILED', raysub: { error_type: 'DISK_PRESSURE' } });
    expect(job.raysub.message).toMatch(/working directory and unsent output held/);
    await waitFor(async () => (await readDisk(mnt)).freeBytes > 100 * MiB, { what: 'the spooled output to be sent and removed' });
  });

  it('keeps no more of a task\'s output for an absent head than the head would keep', { timeout: 180_000 }, async (ctx) => {
    const mnt = smallDisk(ctx, 'size=160m');
    if (mnt === null) return ctx.skip();
    const head = await startHead({ localAgent: false, args: ['--max-log-size', '1M'] });
    await startAgent(head, { name: unique('capped'), numCpus: 2, workDir: path.join(mnt, 'agent'), args: ['--min-free-disk', '48M'] });
    const dir = workingDir({
      'talk.py': `
import os, sys, time
open("started", "w").close()
while not os.path.exists("go"):
    time.sleep(0.05)
for i in range(300 * 1024):
    sys.stdout.buffer.write(b"%-1023d\\n" % i)
sys.stdout.flush()
open("done", "w").close()
while not os.path.exists("end"):
    time.sleep(0.05)
`,
    });
    const before = (await readDisk(mnt)).freeBytes;
    const taskDir = await startTalker(head, mnt, dir);
    const resume = pauseHead(head.pid);
    // 300 MiB of output on a 160 MiB disk while the head is away: the agent holds the head's 1 MiB
    // and the last bytes, so the task is neither evicted nor stopped.
    fs.writeFileSync(path.join(path.dirname(taskDir), 'go'), '');
    await waitFor(() => fs.existsSync(path.join(path.dirname(taskDir), 'done')), { what: 'the talker to write 300 MiB', timeoutMs: 120_000 });
    expect(before - (await readDisk(mnt)).freeBytes).toBeLessThan(16 * MiB);
    resume();
    fs.writeFileSync(path.join(path.dirname(taskDir), 'end'), '');
    const job = await head.client.waitForJob('talker', { timeoutMs: 90_000 });
    const logs = await head.client.getLogs('talker');
    expect(job.status, logs.slice(-2000)).toBe('SUCCEEDED');
    expect(logs.startsWith('0    ')).toBe(true);
    expect(logs).toMatch(/log cap reached/);
    expect(logs).toMatch(/\[raysub\] \d+ bytes of output were dropped; the last \d+ of them follow\n/);
    expect(logs.trimEnd().endsWith(String(300 * 1024 - 1))).toBe(true);
  });
});

/** Submit `talk.py` of `dir` as job `talker`; returns its task directory once it has started. */
async function startTalker(head: Awaited<ReturnType<typeof startHead>>, mnt: string, dir: string): Promise<string> {
  expect((await runCli(['job', 'submit', '--no-wait', '--submission-id', 'talker', '--working-dir', dir, '--', 'python3', 'talk.py'], { env: head.env })).code).toBe(0);
  return waitFor(() => findFile(path.join(mnt, 'agent'), 'started'), { what: 'the task to start', timeoutMs: 60_000 });
}

/** Stop the head (SIGSTOP) until the returned function, or the test's end, resumes it. */
function pauseHead(pid: number): () => void {
  process.kill(pid, 'SIGSTOP');
  let resumed = false;
  const resume = (): void => {
    if (!resumed) process.kill(pid, 'SIGCONT');
    resumed = true;
  };
  onTestFinished(resume);
  return resume;
}

/** The path of the first file named `name` under `root`, or null. */
function findFile(root: string, name: string): string | null {
  const stack = [root];
  while (stack.length > 0) {
    const d = stack.pop() as string;
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(d, { withFileTypes: true });
    } catch {
      continue;
    }
    for (const e of entries) {
      const p = path.join(d, e.name);
      if (e.name === name && e.isFile()) return p;
      if (e.isDirectory()) stack.push(p);
    }
  }
  return null;
}
