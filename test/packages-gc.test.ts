/**
 * Which packages the head collects, decided on a real SQLite file in process: what jobs (pending,
 * finished, deleted) and schedules name, and how long ago a package was last touched. And the
 * migration that records, for jobs stored before it, the packages they name. And when a node
 * collects the packages it unpacked, across a restart of its agent.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { migrate } from '../src/head/db/open.js';
import { migrations } from '../src/head/db/migrations.js';
import { openStore } from '../src/head/db/index.js';
import { PackageCache } from '../src/agent/packageCache.js';
import { PackageCollector } from '../src/head/packageGc.js';
import { PackageStore } from '../src/head/packageStore.js';
import { silentLogger } from '../src/shared/log.js';
import { tempDir } from './helpers/cluster.js';
import { call, inProcessHead } from './helpers/head.js';

const pkg = (tag: string): string => `_raysub_pkg_${crypto.createHash('sha256').update(tag).digest('hex')}.tar.gz`;
const TTL = 60_000;

describe('package collection', () => {
  it('keeps what a job or schedule names and what was touched within the TTL; collects the rest', async () => {
    const head = await inProcessHead();
    const store = new PackageStore(path.join(head.dataDir, 'packages'), { maxBytes: 1024, caps: { maxBytes: 1024, maxEntries: 10 } });
    const collector = new PackageCollector(store, head.store.packageRefs, TTL, silentLogger());
    const names = {
      pending: pkg('pending'),
      finished: pkg('finished'),
      module: pkg('module'),
      deleted: pkg('deleted'),
      schedule: pkg('schedule'),
      fresh: pkg('fresh'),
      stale: pkg('stale'),
    };
    for (const name of Object.values(names)) fs.writeFileSync(store.pathOf(name), 'x');
    const job = (id: string, runtimeEnv: object) => call(head, 'POST', '/api/jobs/', { entrypoint: 'true', submission_id: id, runtime_env: runtimeEnv });
    expect((await job('pending', { working_dir: `gcs://${names.pending}` })).status).toBe(200);
    expect((await job('finished', { working_dir: `gcs://${names.finished}` })).status).toBe(200);
    expect((await job('module', { py_modules: [`gcs://${names.module}`] })).status).toBe(200);
    expect((await job('deleted', { working_dir: `gcs://${names.deleted}` })).status).toBe(200);
    for (const id of ['finished', 'deleted']) expect((await call(head, 'POST', `/api/jobs/${id}/stop`)).status).toBe(200);
    expect((await call(head, 'DELETE', '/api/jobs/deleted')).status).toBe(200);
    const sched = await call(head, 'POST', '/api/schedules', { name: 'nightly', cron: '0 2 * * *', job: { entrypoint: 'true', runtime_env: { working_dir: `gcs://${names.schedule}` } } });
    expect(sched.status, JSON.stringify(sched.json)).toBeLessThan(300);

    const now = Date.now();
    // Every file was just written: nothing goes before the TTL.
    expect(collector.collect(now)).toEqual([]);
    const touched = (name: string, at: number) => fs.utimesSync(store.pathOf(name), new Date(at), new Date(at));
    for (const name of Object.values(names)) touched(name, now - 2 * TTL);
    touched(names.fresh, now - TTL / 2);
    const removed = collector.collect(now).sort();
    expect(removed).toEqual([names.deleted, names.stale].sort());
    const left = (): string[] => store.list().map((p) => p.name).sort();
    expect(left()).toEqual([names.pending, names.finished, names.module, names.schedule, names.fresh].sort());

    // Without its job or schedule, a package goes at the next pass past its TTL.
    expect((await call(head, 'DELETE', '/api/jobs/finished')).status).toBe(200);
    expect((await call(head, 'DELETE', '/api/schedules/nightly')).status).toBeLessThan(300);
    expect(collector.collect(now).sort()).toEqual([names.finished, names.schedule].sort());
    expect(collector.collect(now + TTL)).toEqual([names.fresh]);
    expect(left()).toEqual([names.pending, names.module].sort());
  });

  it('records the packages of jobs stored before package references existed', () => {
    const file = path.join(tempDir('raysub-migrate-'), 'raysub.db');
    const db = new Database(file);
    db.exec('CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)');
    const packagesMigration = migrations.find((m) => m.name === 'packages each job names');
    expect(packagesMigration).toBeDefined();
    for (const m of migrations.filter((m) => m.version < (packagesMigration?.version ?? 0))) {
      db.exec(m.sql);
      db.prepare('INSERT INTO schema_migrations VALUES (?, ?, ?)').run(m.version, m.name, Date.now());
    }
    const insert = db.prepare(`INSERT INTO jobs (id, spec_hash, entrypoint, runtime_env, metadata, request, parallel, max_retries, retry_backoff_s,
      priority, wait_for_capacity, status, created_at) VALUES (?, 'h', 'true', ?, '{}', '{}', 1, 0, 1, 0, 0, 'SUCCEEDED', 0)`);
    insert.run('a', JSON.stringify({ working_dir: `gcs://${pkg('a')}`, py_modules: [`gcs://${pkg('m1')}`, 'https://example.com/x.zip'] }));
    insert.run('b', JSON.stringify({ env_vars: { X: '1' } }));
    insert.run('c', JSON.stringify({ working_dir: `gcs://${pkg('a')}` }));
    migrate(db);
    const rows = db.prepare('SELECT name, job_id FROM job_packages ORDER BY job_id, name').all();
    expect(rows).toEqual(
      [
        { name: pkg('a'), job_id: 'a' },
        { name: pkg('m1'), job_id: 'a' },
        { name: pkg('a'), job_id: 'c' },
      ].sort((x, y) => x.job_id.localeCompare(y.job_id) || x.name.localeCompare(y.name)),
    );
    db.close();
    const store = openStore(file);
    expect(store.packageRefs.isReferenced(pkg('m1'))).toBe(true);
    store.db.prepare("DELETE FROM jobs WHERE id = 'a'").run();
    expect(store.packageRefs.isReferenced(pkg('m1'))).toBe(false);
    expect(store.packageRefs.isReferenced(pkg('a'))).toBe(true);
    store.close();
  });
});

describe("a node's unpacked packages", () => {
  it('a restarted agent collects them by when a task last used them, not from its own start', async () => {
    const work = tempDir('raysub-unpacked-');
    const downloads = path.join(work, 'packages');
    const unpacked = path.join(work, 'unpacked');
    const noHead = { download: () => Promise.reject(new Error('nothing is downloaded here')) };
    const open = () => new PackageCache(downloads, unpacked, noHead, { caps: { maxBytes: 2 ** 20, maxEntries: 100 }, unusedTtlMs: TTL, limitBytes: 2 ** 30 }, silentLogger());
    // Two packages a previous run unpacked: one last used two TTLs ago, one just now.
    const old = pkg('old');
    const recent = pkg('recent');
    for (const name of [old, recent]) fs.mkdirSync(path.join(unpacked, name, 'src'), { recursive: true });
    const longAgo = new Date(Date.now() - 2 * TTL);
    fs.utimesSync(path.join(unpacked, old), longAgo, longAgo);

    const first = open();
    expect(first.sweep()).toEqual([old]);
    // A task uses the recent one: its release records the use, which the next run reads.
    const lease = await first.acquire(recent, new AbortController().signal);
    const released = Date.now();
    lease.release();
    await expect.poll(() => fs.statSync(path.join(unpacked, recent)).mtimeMs).toBeGreaterThanOrEqual(released - 1000);
    first.close();

    // Restarted: within the TTL of that use it stays; past it, it goes at the first sweep.
    const second = open();
    expect(second.sweep(released + TTL / 2)).toEqual([]);
    expect(second.sweep(released + TTL + 1000)).toEqual([recent]);
    second.close();
    await expect.poll(() => fs.readdirSync(unpacked).filter((f) => !f.startsWith('.'))).toEqual([]);
  });
});
