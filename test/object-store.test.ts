/**
 * The node's object store: large objects in shared memory (spilled to disk past the node's share),
 * read as read-only views without copies, fetched between agents into the reader's store, freed
 * when their owner drops the last reference, and never reachable from another job. Real heads,
 * agents and python3 jobs (test/fixtures/objects); the store is measured on the host.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { tmpfsHugePages } from '../src/agent/injob/objectMount.js';
import { checkLines as checks } from './helpers/checks.js';
import { repoRoot, runCli, spawnCli, startAgent, startHead, waitFor } from './helpers/cluster.js';

const FIXTURES = path.join(repoRoot, 'test', 'fixtures', 'objects');
const FAST = ['--heartbeat-ms', '200', '--lease-ms', '3000'];
const MiB = 1024 * 1024;

/** Regular files under an agent's object stores: its shared-memory directory (named in its work dir) and its jobs' directories. */
function storeUse(workDir: string): { files: number; bytes: number } {
  const roots = [path.join(workDir, 'j')];
  try {
    roots.push(fs.readFileSync(path.join(workDir, 'shm-store'), 'utf8').trim());
  } catch {
    // no shared memory
  }
  const use = { files: 0, bytes: 0 };
  const walk = (dir: string): void => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      return; // gone meanwhile
    }
    for (const e of entries) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) {
        try {
          use.bytes += fs.statSync(p).size;
          use.files++;
        } catch {
          // removed meanwhile
        }
      }
    }
  };
  for (const r of roots) walk(r);
  return use;
}

/** The store's use sampled every 25 ms until `stop()`, with the time of each sample. */
function storeSampler(workDir: string): { stop(): { t: number; files: number; bytes: number }[] } {
  const samples: { t: number; files: number; bytes: number }[] = [];
  const sample = (): void => void samples.push({ t: Date.now(), ...storeUse(workDir) });
  sample();
  const timer = setInterval(sample, 25);
  onTestFinished(() => clearInterval(timer));
  return {
    stop: () => {
      clearInterval(timer);
      sample();
      return samples;
    },
  };
}

/** Whether agents started here (as this user) keep their shared-memory store in a huge-page tmpfs of their own. */
const hugeStore = process.platform === 'linux' && process.getuid?.() === 0 && tmpfsHugePages();

const numpyMissing = ((): string | null => {
  const r = spawnSync('python3', ['-c', 'import numpy'], { encoding: 'utf8' });
  return r.status === 0 ? null : `numpy cannot be imported by python3 here (${(r.stderr || 'not installed').trim().split('\n').pop() ?? ''})`;
})();

describe('the object store', () => {
  it.each([
    ['in shared memory', []],
    ['on disk (--object-store-dir none: no shared memory; values come over the socket)', ['--object-store-dir', 'none']],
  ])('frees 500 dropped 1 MiB results within a second of the references going, %s', async (_where, args) => {
    const head = await startHead({ localAgent: false, args: FAST });
    const a = await startAgent(head, { name: 'a', numCpus: 2, args });
    const baseline = storeUse(a.workDir);
    const sampler = storeSampler(a.workDir);
    const res = await runCli(['job', 'submit', '--working-dir', FIXTURES, '--entrypoint-num-cpus', '0', '--', 'python3', 'drop.py', '5'], { env: head.env, timeoutMs: 300_000 });
    const samples = sampler.stop();
    expect(res.code, res.stdout + res.stderr).toBe(0);
    const c = checks(res.stdout);
    expect(c.get('made')?.ok).toBe(true);
    const dropped = Number(c.get('dropped')?.t) * 1000;
    const peak = samples.reduce((m, s) => (s.bytes > m.bytes ? s : m), { t: 0, files: 0, bytes: 0 });
    // All 500 were in the store at once, each a file of 1 MiB and a few bytes.
    expect(peak.files).toBeGreaterThanOrEqual(500);
    expect(peak.bytes).toBeGreaterThanOrEqual(500 * MiB);
    const back = samples.find((s) => s.t >= dropped && s.files === baseline.files && s.bytes === baseline.bytes);
    console.log(`store: baseline ${baseline.files} files; peak ${peak.files} files, ${(peak.bytes / MiB).toFixed(0)} MiB; back to baseline ${back ? back.t - dropped : '-'} ms after the references went`);
    expect(back, 'the store went back to its baseline while the job still ran').toBeDefined();
    expect((back?.t ?? Infinity) - dropped).toBeLessThan(1000);
  }, 330_000);

  it('reads numpy arrays as read-only views of shared memory, not copies (put + 3 readers, a returned array)', async (ctx) => {
    if (numpyMissing) {
      console.log(`skipped: ${numpyMissing}`);
      return ctx.skip();
    }
    const head = await startHead({ localAgent: false, args: FAST });
    await startAgent(head, { name: 'a', numCpus: 2 });
    const res = await runCli(['job', 'submit', '--working-dir', FIXTURES, '--entrypoint-num-cpus', '0', '--', 'python3', 'arrays.py'], { env: head.env, timeoutMs: 240_000 });
    expect(res.code, res.stdout + res.stderr).toBe(0);
    const c = checks(res.stdout);
    const readers = c.get('put_readers')?.readers as Record<string, unknown>[];
    expect(readers).toHaveLength(3);
    console.log(`huge-page store: ${hugeStore}; kB mapped as 2 MiB pages: readers ${readers.map((r) => r.huge_kib).join(', ')}, driver ${String(c.get('driver_get')?.huge_kib)}, returned ${String(c.get('returned')?.huge_kib)}`);
    for (const r of readers) {
      expect(r).toMatchObject({ writeable: false, owndata: false, mmap: true, where: 'shm', sum: 10_000_000, n: 10_000_000 });
      // Reading all 80 MB took no private memory: the pages are the store's.
      expect(r.grew as number).toBeLessThan(8 * MiB);
      // ...and, in the agent's own huge-page tmpfs, nearly all of them are mapped as 2 MiB pages.
      if (hugeStore) expect(r.huge_kib as number).toBeGreaterThanOrEqual(70 * 1024);
    }
    for (const name of ['driver_get', 'returned']) {
      const r = c.get(name);
      expect(r, name).toMatchObject({ writeable: false, owndata: false, mmap: true, where: 'shm' });
      expect(r?.grew as number, name).toBeLessThan(8 * MiB);
      if (hugeStore) expect(r?.huge_kib as number, name).toBeGreaterThanOrEqual(30 * 1024);
    }
    expect(c.get('returned')?.ok).toBe(true);
    expect(c.get('readonly')?.raised).toBe('ValueError');
  }, 270_000);

  it('spills objects past the shared-memory share to disk, reads them back, and uses shared memory again once freed', async (ctx) => {
    if (numpyMissing) {
      console.log(`skipped: ${numpyMissing}`);
      return ctx.skip();
    }
    const head = await startHead({ localAgent: false, args: FAST });
    await startAgent(head, { name: 'a', numCpus: 2, args: ['--object-store-memory', '8M'] });
    const res = await runCli(['job', 'submit', '--working-dir', FIXTURES, '--entrypoint-num-cpus', '0', '--', 'python3', 'spill.py'], { env: head.env, timeoutMs: 240_000 });
    expect(res.code, res.stdout + res.stderr).toBe(0);
    const c = checks(res.stdout);
    expect(c.get('spill')?.objects).toEqual([
      { k: 0, ok: true, where: 'shm' },
      { k: 1, ok: true, where: 'shm' },
      { k: 2, ok: true, where: 'disk' },
      { k: 3, ok: true, where: 'disk' },
    ]);
    expect(c.get('after_free')).toMatchObject({ k: 9, ok: true, where: 'shm' });
  }, 270_000);

  it('fetches a large array into the reading node\'s shared memory, and frees it on both nodes when dropped', async (ctx) => {
    if (numpyMissing) {
      console.log(`skipped: ${numpyMissing}`);
      return ctx.skip();
    }
    const head = await startHead({ localAgent: false, args: FAST });
    const a = await startAgent(head, { name: 'a', numCpus: 2, resources: { node_a: 10 } });
    const b = await startAgent(head, { name: 'b', numCpus: 2, resources: { node_b: 10 } });
    const baseline = { a: storeUse(a.workDir), b: storeUse(b.workDir) };
    const samplers = { a: storeSampler(a.workDir), b: storeSampler(b.workDir) };
    const res = await runCli(
      ['job', 'submit', '--working-dir', FIXTURES, '--entrypoint-num-cpus', '0', '--entrypoint-resources', '{"node_a": 1}', '--', 'python3', 'nodes.py', '5'],
      { env: head.env, timeoutMs: 240_000 },
    );
    const samples = { a: samplers.a.stop(), b: samplers.b.stop() };
    expect(res.code, res.stdout + res.stderr).toBe(0);
    const c = checks(res.stdout);
    expect(c.get('read_there')).toMatchObject({ sum: 5_000_000, where: 'shm', mmap: true, writeable: false });
    expect(c.get('made_there')).toMatchObject({ ok: true, where: 'shm', writeable: false });
    const dropped = Number(c.get('dropped')?.t) * 1000;
    for (const node of ['a', 'b'] as const) {
      const peak = Math.max(...samples[node].map((s) => s.bytes));
      expect(peak, node).toBeGreaterThanOrEqual(40_000_000);
      const empty = samples[node].find((s) => s.t >= dropped && s.files === baseline[node].files && s.bytes === baseline[node].bytes);
      console.log(`node ${node}: peak ${(peak / MiB).toFixed(0)} MiB; empty ${empty ? empty.t - dropped : '-'} ms after the references went`);
      expect(empty, `node ${node}'s store emptied while the job still ran`).toBeDefined();
      expect((empty?.t ?? Infinity) - dropped, node).toBeLessThan(2000);
    }
  }, 270_000);

  it('processes write large objects into their store themselves; the agent takes only a regular file of the size declared, then the job cannot change it', async (ctx) => {
    const head = await startHead({ localAgent: false, args: FAST });
    await startAgent(head, { name: 'a', numCpus: 2 });
    const res = await runCli(['job', 'submit', '--working-dir', FIXTURES, '--entrypoint-num-cpus', '0', '--', 'python3', 'sealing.py'], { env: head.env, timeoutMs: 120_000 });
    expect(res.code, res.stdout + res.stderr).toBe(0);
    const got = checks(res.stdout).get('sealing');
    if (!got?.direct) {
      console.log('skipped: the agent does not run as root here, so processes do not write objects themselves');
      return ctx.skip();
    }
    expect(got.symlink).toMatch(/^ObjectLostError: .*could not be taken from the file its process wrote: ELOOP/);
    // The file the link pointed at is untouched: still the job's own, still writable.
    expect(got.mine_after).toEqual({ mine: true, writable: true });
    expect(got.short).toMatch(/could not be taken .*it holds 10 bytes, not 200000/);
    expect(got.fifo).toMatch(/could not be taken .*it is not a regular file/);
    expect(got.dir).toMatch(/could not be taken .*it is not a regular file/);
    expect(got.sealed).toEqual({ root: true, write: 'PermissionError', unlink: 'PermissionError', rename: 'PermissionError', list: 'PermissionError' });
    expect(got.value).toBe(true);
    expect((await head.client.nodes())[0]?.state).toBe('ALIVE');
  }, 150_000);

  it("a job cannot reach another job's objects: not by their file's path, their directory, or their id", async (ctx) => {
    if (numpyMissing) {
      console.log(`skipped: ${numpyMissing}`);
      return ctx.skip();
    }
    const head = await startHead({ localAgent: false, args: FAST });
    await startAgent(head, { name: 'a', numCpus: 2 });
    const holder = spawnCli(['job', 'submit', '--submission-id', 'holder', '--working-dir', FIXTURES, '--entrypoint-num-cpus', '0', '--', 'python3', 'holder.py'], { env: head.env });
    const found = await waitFor(async () => checks(await head.client.getLogs('holder').catch(() => '')).get('holder'), { what: "the holder's object", timeoutMs: 120_000 });
    const where = String(found.path);
    // The holder's array is mapped from its store in shared memory, which exists on the host.
    expect(where).toMatch(/^\/dev\/shm\/raysub-[^/]+\/[^/]+\/[A-Za-z0-9_-]+$/);
    expect(fs.existsSync(where)).toBe(true);
    const res = await runCli(['job', 'submit', '--working-dir', FIXTURES, '--entrypoint-num-cpus', '0', '--', 'python3', 'intruder.py', where, String(found.id), String(found.owner)], { env: head.env, timeoutMs: 120_000 });
    expect(res.code, res.stdout + res.stderr).toBe(0);
    const got = checks(res.stdout).get('intruder');
    // Not in its sandbox at all: the other job's directory is not bound there.
    expect(got?.open).toBe('FileNotFoundError');
    expect(got?.listdir).toBe('FileNotFoundError');
    // Its agent answers it only with its own job's objects: the id is unknown there.
    expect(got?.get).toBe('GetTimeoutError');
    await head.client.stopJob('holder');
    await holder.result;
    // The holder's store went with it.
    await waitFor(() => !fs.existsSync(where), { what: "the holder's object file to be removed", timeoutMs: 30_000 });
  }, 270_000);
});
