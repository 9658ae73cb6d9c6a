/**
 * A node whose work dir takes no writes (read-only, full, failing) is not a black hole: the task
 * it could not prepare fails as the node's fault (NODE_UNHEALTHY, retried elsewhere as its
 * retries allow), the node reports itself unhealthy with the reason and gets no new work, and it
 * takes work again by itself once a probe of its work dir passes. The decision in process; end to
 * end on an agent whose work dir is a small tmpfs the test remounts read-only, or fills to its last
 * inode (needs root: the test says so and skips otherwise).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { z } from 'zod';
import { agentEventSchema, registerRequestSchema, reportRequestSchema } from '../src/shared/protocol/index.js';
import { RaysubError } from '../src/shared/errors.js';
import { createLogger } from '../src/shared/log.js';
import { nodeFaultOf, WorkDirHealth } from '../src/agent/workDirHealth.js';
import { runCli, startAgent, startHead, tempDir, waitFor, workingDir } from './helpers/cluster.js';
import { unique } from './helpers/sandbox.js';
import { smallDisk } from './helpers/smallDisk.js';

const errno = (code: string, syscall: string, p: string, message?: string): NodeJS.ErrnoException =>
  Object.assign(new Error(message ?? `${code}: failed, ${syscall} '${p}'`), { code, syscall, path: p });
/** As errors come back from the file worker thread: the code, and the path only in the message. */
const fromWorker = (code: string, message: string): Error => Object.assign(new Error(message), { code });

describe('node faults, in process', () => {
  const own = ['/w', '/w/tasks', '/w/packages', '/w/unpacked', '/w/tasks/job1', '/w/tasks/job1/job1.0.1'];
  const cases: [name: string, err: unknown, fault: boolean][] = [
    ['a read-only file system, whatever the path', errno('EROFS', 'mkdir', '/w/tasks/job1'), true],
    ['a full disk while copying the package', fromWorker('ENOSPC', "ENOSPC: no space left on device, write '/w/tasks/job1/job1.0.1/data.bin'"), true],
    ['over quota', errno('EDQUOT', 'open', '/w/tasks/job1/job1.0.1/x'), true],
    ['an I/O error', errno('EIO', 'open', '/w/unpacked/abc/main.py'), true],
    ["the agent's own tasks dir gone", errno('ENOENT', 'mkdir', '/w/tasks/job1'), true],
    ["the agent's own work dir denied", errno('EACCES', 'mkdir', '/w/tasks'), true],
    ['a file of the job denied (its own tree)', errno('EACCES', 'open', '/w/tasks/job1/job1.0.1/secret.txt'), false],
    ['a file of the job missing (its own tree)', fromWorker('ENOENT', "ENOENT: no such file or directory, open '/w/unpacked/abc/gone.py'"), false],
    ['an error with no errno (the head lacks the package)', new RaysubError('PACKAGE_FETCH_FAILED', 'no such package'), false],
    ['something that is not an error', 'EROFS', false],
  ];
  it.each(cases)('%s', (_name, err, fault) => {
    const got = nodeFaultOf(err, own);
    if (!fault) expect(got).toBeNull();
    else expect(got).toBe((err as Error).message);
  });

  it("keeps a new agent's reports readable by a head that predates node faults, and an older agent's healthy on this one", () => {
    const unhealthy = { reason: "work dir not writable: EROFS: read-only file system, open '/w/tasks/.probe-1'", since: 1 };
    const exit = { seq: 1, type: 'exited', task_id: 'j:0', attempt: 1, at: 1, outcome: 'setup_failed', exit_code: null, signal: null, message: 'node n1 could not prepare the task', log_bytes: 0, fault: 'node' };
    const report = { events: [exit], logs: [], running: [], unhealthy };
    expect(reportRequestSchema.parse(report)).toMatchObject({ unhealthy, events: [{ outcome: 'setup_failed', fault: 'node' }] });
    // An older head's schemas are these without the new fields: it reads a setup failure and drops the rest.
    const exitedSchema = agentEventSchema.options[1];
    const older = reportRequestSchema.omit({ unhealthy: true }).extend({ events: z.array(exitedSchema.omit({ fault: true })) });
    const read = older.parse(report);
    expect(read).not.toHaveProperty('unhealthy');
    expect(read.events[0]).toMatchObject({ outcome: 'setup_failed' });
    expect(read.events[0]).not.toHaveProperty('fault');
    expect(registerRequestSchema.omit({ unhealthy: true }).safeParse({ node_name: 'n1', hostname: 'h', pid: 1, version: '1', totals: { num_cpus: 1, num_gpus: 0, memory: 0, resources: {} }, sandbox: { mode: 'none', detail: '', cgroups: false }, unhealthy }).success).toBe(true);
    // An agent that predates them sends neither: healthy.
    expect(reportRequestSchema.parse({ events: [], logs: [], running: [] }).unhealthy).toBeUndefined();
  });

  it('probes the work dir: unhealthy with the errno and path while it takes no writes, healthy again by itself', async () => {
    const root = tempDir('raysub-health-');
    // A file where the probed directory's parent should be: every probe fails (ENOTDIR), even as root.
    const blocker = path.join(root, 'work');
    fs.writeFileSync(blocker, '');
    const changes: string[] = [];
    const health = new WorkDirHealth(path.join(blocker, 'tasks'), createLogger('test', 'silent'), 50);
    onTestFinished(() => health.close());
    health.onChange = () => changes.push(health.unhealthy ? 'unhealthy' : 'healthy');
    expect(await health.check()).toBe(false);
    expect(health.unhealthy?.reason).toMatch(new RegExp(`^work dir not writable: ENOTDIR: not a directory, mkdir '${blocker}`));
    const since = health.unhealthy?.since;
    expect(await health.check()).toBe(false);
    expect(health.unhealthy?.since).toBe(since);
    // The disk is fixed: the next periodic probe finds out, without any task or operator.
    fs.rmSync(blocker);
    await waitFor(() => health.unhealthy === undefined, { what: 'a probe to pass', timeoutMs: 5000 });
    expect(changes).toEqual(['unhealthy', 'healthy']);
    // The probe leaves nothing behind.
    expect(fs.readdirSync(path.join(blocker, 'tasks'))).toEqual([]);
  });
});

const remount = (mnt: string, mode: 'ro' | 'rw'): void => void execFileSync('mount', ['-o', `remount,${mode}`, mnt], { stdio: 'pipe' });
const tryRemount = (mnt: string, mode: 'ro' | 'rw'): boolean => {
  try {
    remount(mnt, mode);
    return true;
  } catch {
    return false;
  }
};

describe('a node whose work dir takes no writes, end to end', () => {
  it('retries the task it could not prepare on the healthy node, shows why it is unhealthy, places nothing there, and takes work again once writable', { timeout: 180_000 }, async (ctx) => {
    const mnt = smallDisk(ctx, 'size=64m');
    if (mnt === null) return ctx.skip();
    const head = await startHead({ localAgent: false });
    const sick = unique('sick');
    const well = unique('well');
    // The larger node is the one that goes bad: placement would pick it first.
    await startAgent(head, { name: sick, numCpus: 4, workDir: path.join(mnt, 'agent'), resources: { only_sick: 1 } });
    await startAgent(head, { name: well, numCpus: 1 });
    const dir = workingDir({ 'hello.py': 'print("hello from the job")\n' });
    const submit = (id: string, ...extra: string[]) =>
      runCli(['job', 'submit', '--no-wait', '--submission-id', id, '--entrypoint-num-cpus', '1', ...extra, '--working-dir', dir, '--', 'python3', 'hello.py'], { env: head.env });

    // The job's package is in the node's cache already: what fails is making the task's directory.
    expect((await submit('warm', '--entrypoint-resources', '{"only_sick": 1}')).code).toBe(0);
    expect((await head.client.waitForJob('warm', { timeoutMs: 90_000 })).status, await head.client.getLogs('warm')).toBe('SUCCEEDED');

    // Read-only once nothing holds a file there open for writing (the warm task's sandbox lingers 2 s).
    await waitFor(() => tryRemount(mnt, 'ro'), { what: 'the work dir to remount read-only', timeoutMs: 30_000, intervalMs: 200 });
    onTestFinished(() => void tryRemount(mnt, 'rw'));

    // Its first attempt goes to the sick node, fails as the node's fault, and is retried on the well one.
    expect((await submit('first', '--max-retries', '1', '--retry-backoff', '0')).code).toBe(0);
    const first = await head.client.waitForJob('first', { timeoutMs: 90_000 });
    expect(first.status, await head.client.getLogs('first')).toBe('SUCCEEDED');
    const attempts = (await head.client.getJob('first')).raysub.tasks?.[0]?.attempts ?? [];
    expect(attempts.map((a) => [a.node_name, a.outcome, a.error_type])).toEqual([
      [sick, 'node_fault', 'NODE_UNHEALTHY'],
      [well, 'exited', null],
    ]);
    expect(attempts[0]?.message).toMatch(new RegExp(`^node ${sick} could not prepare the task \\(could not copy the working dir\\): \\w+: .*, mkdir '${mnt}/agent/tasks/\\S+' \\(work dir not writable: EROFS: read-only file system, open '${mnt}/agent/tasks/\\.probe-[^']+'\\)$`));
    expect(await head.client.getLogs('first')).toContain('hello from the job');

    // The node shows why it takes no work.
    const shown = (await head.client.nodes()).find((n) => n.node_name === sick);
    expect(shown).toMatchObject({ state: 'ALIVE', unhealthy: { reason: expect.stringMatching(new RegExp(`^work dir not writable: EROFS: read-only file system, open '${mnt}/agent/tasks/\\.probe-`)) as unknown } });
    const listed = await runCli(['nodes'], { env: head.env });
    expect(listed.stdout).toMatch(new RegExp(`${sick}\\s+UNHEALTHY`));
    expect(listed.stdout).toMatch(new RegExp(`${sick}: unhealthy \\(noticed .* ago\\), takes no new work: work dir not writable: EROFS`));
    const status = JSON.parse((await runCli(['status', '--json'], { env: head.env })).stdout) as { nodes: { name: string; state: string; reason: string | null }[] };
    expect(status.nodes.find((n) => n.name === sick)).toMatchObject({ state: 'UNHEALTHY', reason: expect.stringMatching(/^unhealthy: work dir not writable: EROFS/) as unknown });
    expect(status.nodes.find((n) => n.name === well)).toMatchObject({ state: 'ALIVE', reason: null });

    // Nothing new goes there, though it has the most free CPUs: no retries needed.
    expect((await submit('second', '--parallel', '2')).code).toBe(0);
    const second = await head.client.waitForJob('second', { timeoutMs: 90_000 });
    expect(second.status, await head.client.getLogs('second')).toBe('SUCCEEDED');
    const tasks = (await head.client.getJob('second')).raysub.tasks ?? [];
    expect(tasks.flatMap((t) => t.attempts.map((a) => [a.node_name, a.error_type]))).toEqual([
      [well, null],
      [well, null],
    ]);

    // Writable again: its own probe sees it, and it takes work (here, work only it can run).
    remount(mnt, 'rw');
    await waitFor(async () => (await head.client.nodes()).find((n) => n.node_name === sick && n.unhealthy === undefined), { what: 'the node to be healthy again', timeoutMs: 30_000 });
    expect((await submit('third', '--entrypoint-resources', '{"only_sick": 1}')).code).toBe(0);
    const third = await head.client.waitForJob('third', { timeoutMs: 90_000 });
    expect(third.status, await head.client.getLogs('third')).toBe('SUCCEEDED');
    expect((await head.client.getJob('third')).raysub.tasks?.[0]?.attempts.map((a) => [a.node_name, a.error_type])).toEqual([[sick, null]]);
    expect((await runCli(['nodes'], { env: head.env })).stdout).not.toContain('UNHEALTHY');
  });

  it('a node out of inodes: the task is retried elsewhere as NODE_UNHEALTHY (ENOSPC), and the node is back once files are freed', { timeout: 180_000 }, async (ctx) => {
    const mnt = smallDisk(ctx, 'size=64m,nr_inodes=4000');
    if (mnt === null) return ctx.skip();
    const head = await startHead({ localAgent: false });
    const sick = unique('full');
    const well = unique('well');
    // The disk guard is off: this is about a work dir that takes no new files, not a task filling it.
    await startAgent(head, { name: sick, numCpus: 4, workDir: path.join(mnt, 'agent'), args: ['--min-free-disk', '0'] });
    await startAgent(head, { name: well, numCpus: 1 });
    // Something else takes every inode left.
    const filler = path.join(mnt, 'filler');
    fs.mkdirSync(filler);
    for (let i = 0; i < 10_000; i++) {
      try {
        fs.writeFileSync(path.join(filler, String(i)), '');
      } catch (err) {
        expect((err as NodeJS.ErrnoException).code).toBe('ENOSPC');
        break;
      }
    }
    const dir = workingDir({ 'hello.py': 'print("hello from the job")\n' });
    const run = await runCli(['job', 'submit', '--no-wait', '--submission-id', 'full', '--max-retries', '1', '--retry-backoff', '0', '--working-dir', dir, '--', 'python3', 'hello.py'], { env: head.env });
    expect(run.code).toBe(0);
    const job = await head.client.waitForJob('full', { timeoutMs: 90_000 });
    expect(job.status, await head.client.getLogs('full')).toBe('SUCCEEDED');
    const attempts = (await head.client.getJob('full')).raysub.tasks?.[0]?.attempts ?? [];
    expect(attempts.map((a) => [a.node_name, a.outcome, a.error_type])).toEqual([
      [sick, 'node_fault', 'NODE_UNHEALTHY'],
      [well, 'exited', null],
    ]);
    expect(attempts[0]?.message).toMatch(/ENOSPC: no space left on device/);
    expect((await head.client.nodes()).find((n) => n.node_name === sick)?.unhealthy?.reason).toMatch(/^work dir not writable: ENOSPC: no space left on device, open '.*\.probe-/);
    fs.rmSync(filler, { recursive: true });
    await waitFor(async () => (await head.client.nodes()).find((n) => n.node_name === sick && n.unhealthy === undefined), { what: 'the node to be healthy again', timeoutMs: 30_000 });
  });
});
