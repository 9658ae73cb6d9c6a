/**
 * Packages under real use: a package of 50,000 files while other work runs and the head keeps
 * answering; packages and unpacked packages collected when nothing uses them; a full data disk.
 */
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { request } from 'undici';
import { describe, expect, it, onTestFinished } from 'vitest';
import { contentName, listTree, putPackage, writeArchive } from './helpers/archives.js';
import { runCli, startHead, tempDir, waitFor, workingDir, type TestHead } from './helpers/cluster.js';

async function put(head: TestHead, name: string, body: Buffer): Promise<{ status: number; code: string | undefined }> {
  const { status, code } = await putPackage(head, name, body);
  return { status, code };
}

/** Time `GET /api/version` every 100 ms until stopped; returns the slowest answer (ms) and how many. */
function latencyProbe(head: TestHead): { stop: () => Promise<{ worst: number; count: number }> } {
  let running = true;
  let worst = 0;
  let count = 0;
  const loop = (async () => {
    while (running) {
      const started = performance.now();
      const res = await request(`${head.url}/api/version`, { headers: { authorization: `Bearer ${head.token}` }, headersTimeout: 10_000, bodyTimeout: 10_000 });
      await res.body.dump();
      expect(res.statusCode).toBe(200);
      worst = Math.max(worst, performance.now() - started);
      count++;
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return { worst, count };
    },
  };
}

/** A fresh directory on its own tmpfs (unmounted when the test ends), or a plain temporary one. */
function scratchArea(prefix: string, size: string): string {
  const dir = tempDir(prefix);
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0700`, 'raysub-test', dir], { stdio: 'pipe' });
    onTestFinished(() => {
      execFileSync('umount', ['-l', dir], { stdio: 'pipe' });
    });
  } catch {
    console.warn(`${prefix}: no tmpfs here; using the disk`);
  }
  return dir;
}

describe('packages under real use', () => {
  it('a 50,000-file package: other jobs on the node keep running and GET /api/version answers within a second throughout', { timeout: 400_000 }, async () => {
    // On a tmpfs where the machine allows one: creating and removing 150,000 files on a shared
    // disk can take minutes, and the test is about the event loop, not the disk.
    const area = scratchArea('raysub-many-', '2g');
    const head = await startHead({ numCpus: 2, dataDir: path.join(area, 'head') });
    const dir = path.join(area, 'src');
    fs.mkdirSync(dir);
    for (let d = 0; d < 500; d++) {
      fs.mkdirSync(path.join(dir, `d${d}`));
      for (let f = 0; f < 100; f++) fs.writeFileSync(path.join(dir, `d${d}`, `f${f}.txt`), `${d}.${f}\n`);
    }
    fs.writeFileSync(path.join(dir, 'count.py'), 'import os\nprint("files:", sum(len(f) for _, _, f in os.walk(".")))\n');

    // Another job on the same node: it prints a line every 200 ms for as long as the big one takes.
    const ticker = await runCli(
      ['job', 'submit', '--no-wait', '--submission-id', 'ticker', '--entrypoint-num-cpus', '1', '--', 'python3', '-c', 'import time\nfor i in range(100000):\n    print("tick", i, flush=True)\n    time.sleep(0.2)'],
      { env: head.env },
    );
    expect(ticker.code).toBe(0);
    await waitFor(async () => (await head.client.getJob('ticker')).status === 'RUNNING', { what: 'the ticker to run' });

    const probe = latencyProbe(head);
    const started = Date.now();
    const big = await runCli(['job', 'submit', '--submission-id', 'many-files', '--working-dir', dir, '--entrypoint-num-cpus', '1', '--', 'python3', 'count.py'], {
      env: head.env,
      timeoutMs: 360_000,
    });
    const ticksBefore = (await head.client.getLogs('ticker')).split('\n').filter((l) => l.startsWith('tick')).length;
    const { worst, count } = await probe.stop();
    console.log(`50,000-file package: job done in ${((Date.now() - started) / 1000).toFixed(1)} s; GET /api/version answered ${count} times, slowest ${worst.toFixed(0)} ms`);
    expect(big.stdout).toContain('files: 50001');
    expect(big.code).toBe(0);
    expect(worst).toBeLessThan(1000);

    // The other job ran on throughout and is still running; the node never left.
    expect((await head.client.getJob('ticker')).status).toBe('RUNNING');
    await waitFor(async () => (await head.client.getLogs('ticker')).split('\n').filter((l) => l.startsWith('tick')).length > ticksBefore, { what: 'the ticker to go on' });
    const nodes = await head.client.nodes();
    expect(nodes.map((n) => n.state)).toEqual(['ALIVE']);
    await head.client.stopJob('ticker');
    // The task's copy is removed afterwards, off the event loop.
    const tasksDir = path.join(head.dataDir, 'agent', 'tasks');
    await waitFor(() => listTree(tasksDir).every((p) => !p.includes('d499')), { what: 'the task directory to be removed', timeoutMs: 120_000 });
    await head.stop();
  });

  it('collects packages no job, schedule or task uses, after the TTL, on the head and on the agent', async () => {
    const head = await startHead({ numCpus: 1, args: ['--unused-package-ttl', '2'] });
    const packagesDir = path.join(head.dataDir, 'packages');
    const unpackedDir = path.join(head.dataDir, 'agent', 'unpacked');
    const stored = () => fs.readdirSync(packagesDir).filter((f) => !f.startsWith('.'));

    const jobDir = workingDir({ 'main.py': 'print("job package")\n' });
    const ran = await runCli(['job', 'submit', '--submission-id', 'keeps', '--working-dir', jobDir, '--', 'python3', 'main.py'], { env: head.env });
    expect(ran.code).toBe(0);
    const [jobPkg] = stored();
    expect(jobPkg).toMatch(/^_raysub_pkg_/);

    const schedDir = workingDir({ 'nightly.py': 'print("schedule package")\n' });
    const sched = await runCli(['schedule', 'create', 'yearly', '--cron', '0 0 1 1 *', '--working-dir', schedDir, '--', 'python3', 'nightly.py'], { env: head.env });
    expect(sched.code, sched.stderr).toBe(0);
    const schedPkg = stored().find((p) => p !== jobPkg) as string;

    const loose = writeArchive(path.join(tempDir(), 'loose.tar.gz'), [{ name: 'a.txt', type: 'file', data: crypto.randomBytes(8).toString('hex') }]);
    expect((await put(head, contentName(loose), fs.readFileSync(loose))).status).toBe(200);
    expect(stored()).toContain(contentName(loose));

    // The package nobody names goes after the TTL; the agent's unpacked copy of the job's package too.
    await waitFor(() => !stored().includes(contentName(loose)) && !fs.readdirSync(unpackedDir).includes(jobPkg as string), { what: 'unused packages to be collected', timeoutMs: 60_000 });
    // What a job and a schedule name stays.
    expect(stored().sort()).toEqual([jobPkg, schedPkg].sort());

    // Deleting the job frees its package; deleting the schedule frees its one.
    await head.client.deleteJob('keeps');
    await waitFor(() => !stored().includes(jobPkg as string), { what: "the deleted job's package to be collected", timeoutMs: 60_000 });
    expect(stored()).toEqual([schedPkg]);
    await head.client.deleteSchedule('yearly');
    await waitFor(() => stored().length === 0, { what: "the deleted schedule's package to be collected", timeoutMs: 60_000 });
  });

  it('a full data disk gives 507 DISK_FULL on upload, stores nothing, and the head keeps serving', async (ctx) => {
    const mnt = tempDir('raysub-full-');
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=24m,mode=0700', 'raysub-test-full', mnt], { stdio: 'pipe' });
    } catch (err) {
      console.warn(`skipping "${ctx.task.name}": cannot mount a small tmpfs as the data dir here (${(err as Error).message.split('\n')[0]})`);
      return ctx.skip();
    }
    onTestFinished(() => {
      execFileSync('umount', ['-l', mnt], { stdio: 'pipe' });
    });
    const head = await startHead({ localAgent: false, dataDir: path.join(mnt, 'data') });
    // Incompressible content: the package is about as large as the disk it is sent to.
    const src = tempDir();
    fs.writeFileSync(path.join(src, 'noise.bin'), crypto.randomBytes(30 * 1024 * 1024));
    const big = path.join(tempDir(), 'big.tar.gz');
    execFileSync('tar', ['czf', big, '-C', src, 'noise.bin']);
    const res = await put(head, contentName(big), fs.readFileSync(big));
    expect(res).toEqual({ status: 507, code: 'DISK_FULL' });
    const incoming = path.join(head.dataDir, 'packages', '.incoming');
    expect(fs.readdirSync(incoming)).toEqual([]);
    expect(fs.readdirSync(path.join(head.dataDir, 'packages')).filter((f) => !f.startsWith('.'))).toEqual([]);

    // The head is alive and serving; what fits is stored and runs as before.
    expect((await head.client.version()).version).toBeTruthy();
    const small = writeArchive(path.join(tempDir(), 'small.tar.gz'), [{ name: 'main.py', type: 'file', data: 'print(1)\n' }]);
    expect((await put(head, contentName(small), fs.readFileSync(small))).status).toBe(200);
    await head.client.submitJob({ entrypoint: 'true', submission_id: 'after-full', runtime_env: { working_dir: `gcs://${contentName(small)}` } });
    expect((await head.client.getJob('after-full')).status).toBe('PENDING');

    // A disk already full to the last block: the same answer, again with nothing left behind.
    const filler = path.join(mnt, 'filler');
    try {
      execFileSync('dd', ['if=/dev/zero', `of=${filler}`, 'bs=1M', 'count=64'], { stdio: 'pipe' });
    } catch {
      // dd stops at the end of the disk: that is the point
    }
    const medium = path.join(tempDir(), 'medium.tar.gz');
    fs.writeFileSync(path.join(src, 'noise.bin'), crypto.randomBytes(1024 * 1024));
    execFileSync('tar', ['czf', medium, '-C', src, 'noise.bin']);
    expect(await put(head, contentName(medium), fs.readFileSync(medium))).toEqual({ status: 507, code: 'DISK_FULL' });
    expect(fs.readdirSync(incoming)).toEqual([]);
    expect((await head.client.getJob('after-full')).submission_id).toBe('after-full');
    fs.rmSync(filler);
    expect((await put(head, contentName(medium), fs.readFileSync(medium))).status).toBe(200);
    expect(head.proc.exitCode).toBeNull();
  });
});
