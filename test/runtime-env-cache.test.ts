/**
 * The env cache: one build per key however many ask, LRU eviction under the size limit that never
 * touches an env a task holds, builds aborted when every waiter gives up, and crash leftovers
 * removed. The unit tests drive the real cache on a real directory; the last test runs it through
 * a head, its agent and the CLI.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { EnvCache } from '../src/agent/envs/index.js';
import { hostPath } from '../src/agent/envs/probe.js';
import type { BuildContext } from '../src/agent/envs/cache.js';
import { silentLogger } from '../src/shared/log.js';
import { runCli, startHead, tempDir, waitFor, workingDir, type TestHead } from './helpers/cluster.js';
import { buildWheel, httpGate, offlinePipEnv } from './helpers/runtimeEnvFixtures.js';

const quiet = { output: () => undefined, label: 'test' };

function signal(): AbortSignal {
  return new AbortController().signal;
}

/** A build writing `bytes` bytes, counting how often it ran. */
function filler(bytes: number, counter: { n: number }) {
  return async (ctx: BuildContext): Promise<void> => {
    counter.n++;
    await new Promise((r) => setTimeout(r, 50));
    fs.writeFileSync(path.join(ctx.dir, 'data'), Buffer.alloc(bytes));
  };
}

describe('env cache', () => {
  it('builds a key once for concurrent requests and reuses it after', async () => {
    const cache = new EnvCache(tempDir('raysub-cache-'), 1e9, silentLogger());
    const count = { n: 0 };
    const leases = await Promise.all([1, 2, 3].map(() => cache.acquire('pip', 'k1', { ...quiet, signal: signal() }, filler(100, count))));
    expect(count.n).toBe(1);
    expect(new Set(leases.map((l) => l.dir)).size).toBe(1);
    const again = await cache.acquire('pip', 'k1', { ...quiet, signal: signal() }, filler(100, count));
    expect(again.built).toBe(false);
    expect(count.n).toBe(1);
    expect(cache.usage().caches.pip).toEqual({ bytes: 100, entries: 1, in_use: 1 });
    for (const l of [...leases, again]) l.release();
    expect(cache.usage().caches.pip.in_use).toBe(0);
  });

  it('evicts the least recently used idle envs over the limit, never one in use', async () => {
    const root = tempDir('raysub-cache-');
    const cache = new EnvCache(root, 2500, silentLogger());
    const count = { n: 0 };
    const use = async (key: string) => cache.acquire('pip', key, { ...quiet, signal: signal() }, filler(1000, count));
    (await use('a')).release();
    (await use('b')).release();
    (await use('a')).release(); // a is now more recent than b
    const c = await use('c'); // 3000 bytes: b, the least recently used, goes
    expect(fs.existsSync(path.join(root, 'pip', 'b'))).toBe(false);
    expect(fs.existsSync(path.join(root, 'pip', 'a'))).toBe(true);
    expect(cache.usage().cache_bytes).toBe(2000);

    // With a limit of one byte nothing idle stays, but what tasks hold does.
    const tiny = new EnvCache(tempDir('raysub-cache-'), 1, silentLogger());
    const held = await tiny.acquire('npm', 'held', { ...quiet, signal: signal() }, filler(1000, count));
    const other = await tiny.acquire('npm', 'other', { ...quiet, signal: signal() }, filler(1000, count));
    expect(tiny.usage().caches.npm).toEqual({ bytes: 2000, entries: 2, in_use: 2 });
    other.release();
    expect(tiny.usage().caches.npm).toEqual({ bytes: 1000, entries: 1, in_use: 1 });
    expect(fs.existsSync(path.join(held.dir, 'data'))).toBe(true);
    held.release();
    expect(tiny.usage().caches.npm.entries).toBe(0);
    c.release();
  });

  it('keeps a build going while one waiter remains and aborts it when the last one leaves', async () => {
    const root = tempDir('raysub-cache-');
    const cache = new EnvCache(root, 1e9, silentLogger());
    let buildSignal: AbortSignal | null = null;
    const hang = async (ctx: BuildContext): Promise<void> => {
      buildSignal = ctx.signal;
      fs.writeFileSync(path.join(ctx.dir, 'partial'), 'x');
      await new Promise<void>((_resolve, reject) => ctx.signal.addEventListener('abort', () => reject(new Error('aborted'))));
    };
    const first = new AbortController();
    const second = new AbortController();
    const p1 = cache.acquire('pip', 'slow', { ...quiet, signal: first.signal }, hang);
    const p2 = cache.acquire('pip', 'slow', { ...quiet, signal: second.signal }, hang);
    await waitFor(() => buildSignal !== null);
    first.abort();
    await expect(p1).rejects.toThrow('aborted');
    expect(buildSignal!.aborted).toBe(false);
    second.abort();
    await expect(p2).rejects.toThrow('aborted');
    expect(buildSignal!.aborted).toBe(true);
    await waitFor(() => !fs.existsSync(path.join(root, 'pip', 'slow')) && !fs.existsSync(path.join(root, 'pip', 'slow.lock')), { what: 'the aborted build to be cleaned up' });
    expect(fs.existsSync(path.join(root, 'pip', 'slow.json'))).toBe(false);
  });

  it('removes what a failed build or a crashed agent left, and keeps ready envs', async () => {
    const root = tempDir('raysub-cache-');
    const cache = new EnvCache(root, 1e9, silentLogger());
    const failing = async (ctx: BuildContext): Promise<void> => {
      fs.writeFileSync(path.join(ctx.dir, 'half'), 'x');
      throw new Error('pip install failed with exit code 1: ERROR: nope');
    };
    await expect(cache.acquire('pip', 'bad', { ...quiet, signal: signal() }, failing)).rejects.toThrow('ERROR: nope');
    expect(fs.readdirSync(path.join(root, 'pip'))).toEqual([]);
    (await cache.acquire('pip', 'good', { ...quiet, signal: signal() }, filler(10, { n: 0 }))).release();

    // A crashed build: a directory without its record, and the lock of a process that is gone.
    const dead = spawnSync('true').pid ?? 999_999;
    fs.mkdirSync(path.join(root, 'pip', 'crashed'));
    fs.writeFileSync(path.join(root, 'pip', 'crashed', 'half'), 'x');
    fs.writeFileSync(path.join(root, 'pip', 'crashed.lock'), String(dead));
    const restarted = new EnvCache(root, 1e9, silentLogger());
    expect(fs.readdirSync(path.join(root, 'pip')).sort()).toEqual(['good', 'good.json']);
    expect(restarted.usage().caches.pip).toEqual({ bytes: 10, entries: 1, in_use: 0 });
    const reused = await restarted.acquire('pip', 'good', { ...quiet, signal: signal() }, failing);
    expect(reused.built).toBe(false);
    reused.release();
  });
});

const GATED = `
import os, time, urllib.request
def is_open():
    try:
        return urllib.request.urlopen(os.environ["GATE"]).status == 200
    except Exception:
        return False
while not is_open():
    time.sleep(0.05)
import tinya
print("still importable:", tinya.VALUE)
`;

interface CacheUsageJson {
  cache_bytes: number;
  cache_limit_bytes: number;
  caches: Record<'pip' | 'npm' | 'py_modules', { bytes: number; entries: number; in_use: number }>;
}

async function pipUsage(head: TestHead): Promise<CacheUsageJson> {
  const res = await runCli(['nodes', '--json'], { env: head.env });
  const { nodes } = JSON.parse(res.stdout) as { nodes: { usage: CacheUsageJson }[] };
  const usage = nodes[0]?.usage;
  if (!usage?.caches) throw new Error('no cache usage reported yet');
  return usage;
}

describe('programs the agent starts for a task outside its sandbox', () => {
  it('are found only in absolute directories outside the agent\'s work dir, whatever PATH the job set', () => {
    const work = '/var/lib/raysub/agent';
    const searchPath = ['/usr/bin', '.', 'bin', '', `${work}/tasks/job/job.0.1/bin`, work, `${work}/unpacked/p/bin`, `${work}-other/bin`, '/opt/py/bin'].join(':');
    expect(hostPath(searchPath, work)).toBe(`/usr/bin:${work}-other/bin:/opt/py/bin`);
    expect(hostPath(undefined, work)).toBeUndefined();
  });
});

describe('env cache on a node', { timeout: 180_000 }, () => {
  it('evicts under a small limit without touching the env of a running job, and reports its use', async () => {
    const wheelDir = tempDir('raysub-wheels-');
    buildWheel(wheelDir, 'tinya', '1.0', 'tinya', 'VALUE = "a"\n');
    buildWheel(wheelDir, 'tinyb', '1.0', 'tinyb', 'VALUE = "b"\n');
    const head = await startHead({ numCpus: 2, env: offlinePipEnv(wheelDir), args: ['--cache-limit', '1'] });
    const pipDir = path.join(head.dataDir, 'agent', 'envs', 'pip');
    const ready = (): string[] => fs.readdirSync(pipDir).filter((f) => f.endsWith('.json'));
    const gate = await httpGate();
    const dir = workingDir({ 'gated.py': GATED });

    const a = await runCli(
      ['job', 'submit', '--no-wait', '--submission-id', 'holds-a', '--working-dir', dir, '--runtime-env-json', JSON.stringify({ pip: ['tinya'], env_vars: { GATE: gate.url } }), '--', 'python3', 'gated.py'],
      { env: head.env },
    );
    expect(a.code, a.stderr).toBe(0);
    await waitFor(async () => (await head.client.getJob('holds-a')).status === 'RUNNING', { what: 'job a to run' });
    const envA = ready()[0];
    expect(envA).toBeDefined();

    const b = await runCli(['job', 'submit', '--submission-id', 'uses-b', '--runtime-env-json', JSON.stringify({ pip: ['tinyb'] }), '--', 'python3', '-c', 'import tinyb; print(tinyb.VALUE)'], {
      env: head.env,
    });
    expect(b.code, b.stderr).toBe(0);
    // b's env went as soon as b ended (the cache is over its limit); a's stays while a runs.
    await waitFor(() => ready().length === 1, { what: 'the env of job b to be evicted' });
    expect(ready()).toEqual([envA]);
    const during = await waitFor(async () => {
      const u = await pipUsage(head);
      return u.caches.pip.entries === 1 && u.caches.pip.in_use === 1 ? u : null;
    }, { what: 'nodes --json to show one pip env in use' });
    expect(during.cache_limit_bytes).toBe(1);
    expect(during.cache_bytes).toBeGreaterThan(0);

    gate.open();
    const done = await head.client.waitForJob('holds-a', { timeoutMs: 30_000 }).catch(async (err: unknown) => {
      throw new Error(`${String(err)}\n${await head.client.getLogs('holds-a')}`);
    });
    expect(done.status).toBe('SUCCEEDED');
    expect(await head.client.getLogs('holds-a')).toContain('still importable: a');
    await waitFor(() => ready().length === 0, { what: 'the env of job a to be evicted once a ended' });
    await waitFor(async () => (await pipUsage(head)).caches.pip.entries === 0, { what: 'nodes --json to show an empty cache' });

    const again = await runCli(['job', 'submit', '--submission-id', 'uses-b-again', '--runtime-env-json', JSON.stringify({ pip: ['tinyb'] }), '--', 'python3', '-c', 'import tinyb'], {
      env: head.env,
    });
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toContain('pip: building env');
  });
});
