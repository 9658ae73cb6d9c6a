/**
 * What the dashboard reads from the head, on an in-process head with a real SQLite file: job
 * counts kept by triggers (never a scan of the jobs), the label filter with its cursor, query
 * plans that walk indexes, the change events that make the table live, the cluster history.
 */
import { describe, expect, it, onTestFinished } from 'vitest';
import type { ClusterHistoryResponse, JobCountsResponse, JobDetails } from '../src/shared/protocol/index.js';
import { migrate } from '../src/head/db/open.js';
import { call, inProcessHead } from './helpers/head.js';

type Head = Awaited<ReturnType<typeof inProcessHead>>;

async function submit(head: Head, id: string, metadata: Record<string, string> = {}, extra: Record<string, unknown> = {}): Promise<void> {
  // 10,000 CPUs fit no node: with wait_for_capacity the job stays PENDING, so states change only when the test says.
  const res = await call(head, 'POST', '/api/jobs/', { entrypoint: 'true', submission_id: id, metadata, entrypoint_num_cpus: 10_000, raysub: { wait_for_capacity: true }, ...extra });
  expect(res.status).toBe(200);
}

/** The counts the slow way, to compare with the table the triggers keep. */
function scanCounts(head: Head): Record<string, number> {
  const rows = head.store.db.prepare('SELECT status, COUNT(*) AS n FROM jobs GROUP BY status').all() as { status: string; n: number }[];
  return Object.fromEntries(rows.map((r) => [r.status, r.n]));
}

async function summary(head: Head, label?: string): Promise<JobCountsResponse> {
  const res = await call(head, 'GET', `/api/cluster/summary${label ? `?label=${encodeURIComponent(label)}` : ''}`);
  expect(res.status).toBe(200);
  return res.json as unknown as JobCountsResponse;
}

async function listAll(head: Head, query: string, limit: number): Promise<string[]> {
  const ids: string[] = [];
  let cursor: string | null = null;
  for (let page = 0; page < 100; page++) {
    const url: string = `/api/jobs/?limit=${limit}&${query}${cursor ? `&cursor=${cursor}` : ''}`;
    const res = await head.app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${head.token}` } });
    expect(res.statusCode).toBe(200);
    const jobs = JSON.parse(res.body) as JobDetails[];
    expect(jobs.length).toBeLessThanOrEqual(limit);
    ids.push(...jobs.map((j) => j.submission_id));
    cursor = (res.headers['x-next-cursor'] as string | undefined) ?? null;
    if (!cursor) break;
  }
  return ids;
}

describe('the dashboard API', () => {
  it('keeps job counts by status right through submissions, stops and deletions, without scanning jobs', async () => {
    const head = await inProcessHead();
    for (let i = 0; i < 6; i++) await submit(head, `c${i}`);
    // Without wait_for_capacity too (with no node at all, it waits).
    expect((await call(head, 'POST', '/api/jobs/', { entrypoint: 'true', submission_id: 'plain', entrypoint_num_cpus: 10_000 })).status).toBe(200);
    expect((await call(head, 'POST', '/api/jobs/c0/stop')).status).toBe(200);
    expect((await call(head, 'POST', '/api/jobs/c1/stop')).status).toBe(200);
    expect((await call(head, 'DELETE', '/api/jobs/c1')).status).toBe(200);
    // The same submission again changes nothing.
    await submit(head, 'c2');

    const s = await summary(head);
    expect(s.counts).toEqual(scanCounts(head));
    expect(s.counts).toEqual({ PENDING: 5, STOPPED: 1 });
    expect(s.total).toBe(6);
    expect(s.max_seq).toBe((head.store.db.prepare('SELECT MAX(seq) AS m FROM jobs').get() as { m: number }).m);

    // Reading the counts touches only the small table.
    const plan = head.store.db.prepare("EXPLAIN QUERY PLAN SELECT status, n FROM job_status_counts WHERE n > 0").all() as { detail: string }[];
    expect(plan.map((p) => p.detail).join(' ')).not.toMatch(/\bjobs\b/);
  });

  it('fills the counts and labels of jobs stored before the dashboard existed', async () => {
    const head = await inProcessHead();
    await submit(head, 'old-1', { team: 'a' });
    await submit(head, 'old-2', { team: 'b' });
    const db = head.store.db;
    // Back to the schema before migration 6, with jobs in it; migrating again must backfill.
    db.exec(`
      DROP TRIGGER job_counts_insert; DROP TRIGGER job_counts_update; DROP TRIGGER job_counts_delete; DROP TRIGGER job_labels_insert;
      DROP TABLE job_status_counts; DROP TABLE job_labels;
      DELETE FROM schema_migrations WHERE version = 6;`);
    migrate(db);
    expect(scanCounts(head)).toEqual({ PENDING: 2 });
    expect((await summary(head)).counts).toEqual({ PENDING: 2 });
    expect(await listAll(head, 'label=team%3Da', 10)).toEqual(['old-1']);
  });

  it('filters by label (key, or key=value) newest first, page by page, with bounded counts', async () => {
    const head = await inProcessHead();
    const want: string[] = [];
    for (let i = 0; i < 9; i++) {
      const team = i % 3 === 0 ? 'vision' : 'nlp';
      await submit(head, `l${i}`, { team, ...(i % 2 === 0 ? { sweep: 'lr=0.1' } : {}) });
      if (team === 'vision') want.unshift(`l${i}`);
    }
    expect((await call(head, 'POST', '/api/jobs/l6/stop')).status).toBe(200);

    expect(await listAll(head, 'label=team%3Dvision', 2)).toEqual(want);
    expect(await listAll(head, 'label=sweep', 4)).toEqual(['l8', 'l6', 'l4', 'l2', 'l0']);
    // A value holding "=" is matched whole.
    expect(await listAll(head, `label=${encodeURIComponent('sweep=lr=0.1')}`, 10)).toEqual(['l8', 'l6', 'l4', 'l2', 'l0']);
    expect(await listAll(head, 'label=team%3Dvision&status=STOPPED', 10)).toEqual(['l6']);
    expect(await listAll(head, 'label=nobody', 10)).toEqual([]);
    // job_submission_id is raysub's own: not a label.
    expect(await listAll(head, 'label=job_submission_id', 10)).toEqual([]);

    const s = await summary(head, 'team=vision');
    expect(s).toMatchObject({ counts: { PENDING: 2, STOPPED: 1 }, total: 3, capped: false });

    for (const bad of ['label=', 'label=%3Dx']) {
      const res = await call(head, 'GET', `/api/jobs/?${bad}`);
      expect({ bad, status: res.status, code: res.json.error?.code }).toEqual({ bad, status: 400, code: 'INVALID_REQUEST' });
    }
  });

  it('pages and filters through indexes, never a scan of every job', async () => {
    const head = await inProcessHead();
    const db = head.store.db;
    const plans: Record<string, string> = {};
    const explain = (name: string, sql: string, ...params: unknown[]): void => {
      plans[name] = (db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...params) as { detail: string }[]).map((r) => r.detail).join('; ');
    };
    explain('page', 'SELECT j.* FROM jobs AS j WHERE j.seq < ? ORDER BY j.seq DESC LIMIT ?', 1000, 51);
    explain('status', "SELECT j.* FROM jobs AS j WHERE j.seq < ? AND j.status IN (?) ORDER BY j.seq DESC LIMIT ?", 1000, 'FAILED', 51);
    explain('label', 'SELECT j.* FROM job_labels AS l JOIN jobs AS j ON j.seq = l.seq WHERE l.key = ? AND l.value = ? AND l.seq < ? ORDER BY l.seq DESC LIMIT ?', 'team', 'a', 1000, 51);
    for (const [name, plan] of Object.entries(plans)) {
      // "SCAN j" alone (no index) would read every job; every plan here searches or walks an index.
      expect({ name, plan }).not.toEqual({ name, plan: expect.stringMatching(/SCAN (j|jobs)(?! USING)|USE TEMP B-TREE/) });
    }
  });

  it('tells listeners within a second when a job is submitted or changes state', async () => {
    const head = await inProcessHead();
    const port = await head.serve('127.0.0.1', 0);
    const ac = new AbortController();
    onTestFinished(() => ac.abort());
    const res = await fetch(`http://127.0.0.1:${port}/api/cluster/events`, { headers: { authorization: `Bearer ${head.token}` }, signal: ac.signal });
    expect(res.headers.get('content-type')).toBe('text/event-stream');
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    const nextEvent = async (): Promise<JobCountsResponse> => {
      for (;;) {
        const m = /event: jobs\ndata: (.*)\n\n/.exec(buffer);
        if (m) {
          buffer = buffer.slice((m.index ?? 0) + m[0].length);
          return JSON.parse(m[1] as string) as JobCountsResponse;
        }
        const { value, done } = await reader.read();
        if (done) throw new Error('the event stream ended');
        buffer += value;
      }
    };
    expect((await nextEvent()).total).toBe(0);

    let t = Date.now();
    await submit(head, 'live-1');
    const afterSubmit = await nextEvent();
    expect(afterSubmit).toMatchObject({ total: 1, counts: { PENDING: 1 } });
    expect(Date.now() - t).toBeLessThan(1000);

    t = Date.now();
    expect((await call(head, 'POST', '/api/jobs/live-1/stop')).status).toBe(200);
    expect(await nextEvent()).toMatchObject({ total: 1, counts: { STOPPED: 1 } });
    expect(Date.now() - t).toBeLessThan(1000);
  });

  it('samples the cluster for the charts and keeps only the last span', async () => {
    const head = await inProcessHead({ history: { intervalMs: 100, spanMs: 300 } });
    await head.serve('127.0.0.1', 0);
    await submit(head, 'h1');
    await submit(head, 'h2');
    expect((await call(head, 'POST', '/api/jobs/h2/stop')).status).toBe(200);
    const history = async (): Promise<ClusterHistoryResponse> => (await call(head, 'GET', '/api/cluster/history')).json as unknown as ClusterHistoryResponse;
    await expect.poll(async () => (await history()).samples.at(-1), { timeout: 5000 }).toMatchObject({ pending: 1, running: 0, finished: 1 });
    // A span of 300 ms at 100 ms keeps 4 samples, oldest first, and the answer adds the cluster as it is now.
    await expect.poll(async () => (await history()).samples.length, { timeout: 5000 }).toBe(5);
    const { samples, interval_ms } = await history();
    expect(interval_ms).toBe(100);
    expect(samples.map((x) => x.t)).toEqual([...samples.map((x) => x.t)].sort((a, b) => a - b));
  });
});
