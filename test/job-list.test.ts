/**
 * The job list reads a page in one statement (its jobs' task counts, usage and driver names
 * with their rows); what it answers is, job for job and byte for byte, what each job's own view
 * answers, whatever the jobs' states, usage, nodes, filters and pages. On a real head in process,
 * with agents' reports applied by its engine at times passed in.
 */
import { describe, expect, it } from 'vitest';
import type { AgentEvent, JobDetails } from '../src/shared/protocol/index.js';
import { jobPageSql } from '../src/head/db/jobPage.js';
import { addNode, call, inProcessHead } from './helpers/head.js';

const T0 = 1_800_000_000_000;
/** An agent's event before the report numbers it. */
type Unnumbered<E> = E extends unknown ? Omit<E, 'seq'> : never;

describe('job list', () => {
  it('answers for each job exactly what its own view does, on every page and under every filter', async () => {
    const head = await inProcessHead();
    const n1 = addNode(head, 'n1', { cpus: 6, gpus: 1 }, T0);
    const n2 = addNode(head, 'n2', { cpus: 2 }, T0);
    const seq = new Map<string, number>();
    const report = (node: string, events: Unnumbered<AgentEvent>[], at: number): void => {
      const withSeq = events.map((e) => {
        const s = (seq.get(node) ?? 0) + 1;
        seq.set(node, s);
        return { ...e, seq: s };
      });
      head.engine.applyReport(node, withSeq, null, at);
    };
    const submit = (id: string, extra: Record<string, unknown> = {}): void => {
      head.jobs.submit({ entrypoint: 'true', submission_id: id, entrypoint_num_cpus: 1, ...extra });
    };
    submit('plain');
    submit('labelled', { metadata: { team: 'vision', job_name: 'sweep' } });
    submit('array', { raysub: { parallel: 3 }, metadata: { team: 'vision' } });
    submit('gpu', { entrypoint_num_gpus: 1, entrypoint_num_cpus: 0.5 });
    submit('retried', { raysub: { max_retries: 1, retry_backoff_s: 0 } });
    submit('waits', { entrypoint_num_cpus: 64, raysub: { wait_for_capacity: true } });
    submit('held', { raysub: { hold: true } });
    // Every other column a listed row carries: dependencies, an array spec, a cap, a runtime env.
    submit('follows', { runtime_env: { env_vars: { A: '1' } }, metadata: { note: 'é "quoted"' }, raysub: { after: ['plain'], after_any: ['gpu'], array: '0-6:3%2', timeout_s: 5, priority: 2, max_retries: 2 } });
    head.engine.schedule(undefined, T0);
    const placed = new Map<string, { node: string; attempt: number }>();
    for (const id of ['plain', 'labelled', 'array', 'gpu', 'retried']) {
      for (const t of head.engine.view.tasksOfJob(id)) if (t.nodeId) placed.set(t.id, { node: t.nodeId, attempt: t.attempt });
    }
    const started = (taskId: string, at: number): void => {
      const p = placed.get(taskId);
      if (p) report(p.node, [{ type: 'started', task_id: taskId, attempt: p.attempt, at }], at);
    };
    const exited = (taskId: string, at: number, code: number, usage?: { cpu_s: number | null; peak_memory: number | null }): void => {
      const p = placed.get(taskId);
      if (p) report(p.node, [{ type: 'exited', task_id: taskId, attempt: p.attempt, at, outcome: 'exited', exit_code: code, signal: null, message: null, log_bytes: 0, ...(usage ? { usage } : {}) }], at);
    };
    for (const id of placed.keys()) started(id, T0 + 10);
    exited('plain:0', T0 + 1234, 0, { cpu_s: 0.123456, peak_memory: 10_000_000 });
    exited('labelled:0', T0 + 2000, 0, { cpu_s: null, peak_memory: null });
    exited('array:0', T0 + 500, 0, { cpu_s: 0.1, peak_memory: 1000 });
    exited('array:1', T0 + 700, 0, { cpu_s: 0.2, peak_memory: 3000 });
    exited('gpu:0', T0 + 3001, 0, { cpu_s: 1.5, peak_memory: 5 });
    exited('retried:0', T0 + 100, 3, { cpu_s: 0.01, peak_memory: 7 });
    head.engine.schedule(undefined, T0 + 200);
    const again = head.engine.view.tasksOfJob('retried')[0];
    if (again?.nodeId) placed.set(again.id, { node: again.nodeId, attempt: again.attempt });
    // The retried job runs its second attempt, on whichever node; the array's last task still runs.
    started('retried:0', T0 + 300);
    // A node that is gone from the node list still names the jobs it drove.
    head.engine.nodeLost(n2, 'node n2 shut down', T0 + 5000);

    const all = (await call(head, 'GET', '/api/jobs/')).json as unknown as JobDetails[];
    expect(all.map((j) => j.submission_id)).toEqual(['follows', 'held', 'waits', 'retried', 'gpu', 'array', 'labelled', 'plain']);
    expect(all[0]?.raysub).toMatchObject({ after: ['plain'], after_any: ['gpu'], array: '0-6:3%2', max_concurrent: 2, timeout_s: 5, priority: 2, max_retries: 2 });
    expect(all[0]?.runtime_env).toEqual({ env_vars: { A: '1' } });
    const statuses = Object.fromEntries(all.map((j) => [j.submission_id, j.status]));
    expect(statuses).toMatchObject({ plain: 'SUCCEEDED', labelled: 'SUCCEEDED', gpu: 'SUCCEEDED', array: 'RUNNING', waits: 'PENDING', held: 'PENDING' });
    // The listing shows what was read with the page: counts, usage, nodes.
    const byId = new Map(all.map((j) => [j.submission_id, j]));
    expect(byId.get('array')?.raysub.task_counts).toEqual({ RUNNING: 1, SUCCEEDED: 2 });
    expect(byId.get('plain')?.raysub.usage).toEqual({ cpu_s: 0.123, peak_memory: 10_000_000, run_s: 1.224, gpu_s: 0 });
    expect(byId.get('labelled')?.raysub.usage).toEqual({ cpu_s: null, peak_memory: null, run_s: 1.99, gpu_s: 0 });
    expect(byId.get('gpu')?.raysub.usage?.gpu_s).toBe(2.991);
    expect(byId.get('waits')?.raysub.usage).toEqual({ cpu_s: null, peak_memory: null, run_s: null, gpu_s: null });
    expect(all.some((j) => j.raysub.driver_node?.name === 'n2')).toBe(true);
    expect(all.some((j) => j.raysub.driver_node?.id === n1)).toBe(true);

    const own = (j: JobDetails): string => JSON.stringify(head.jobs.details(j.submission_id, false));
    for (const j of all) expect(JSON.stringify(j), j.submission_id).toBe(own(j));

    // Pages of 2, followed by cursor, give the same jobs in the same order.
    const paged: JobDetails[] = [];
    let cursor: string | null = null;
    for (let i = 0; i < 10; i++) {
      const res = await head.app.inject({ method: 'GET', url: `/api/jobs/?limit=2${cursor ? `&cursor=${cursor}` : ''}`, headers: { authorization: `Bearer ${head.token}` } });
      paged.push(...(JSON.parse(res.body) as JobDetails[]));
      const next: unknown = res.headers['x-next-cursor'];
      cursor = typeof next === 'string' ? next : null;
      if (!cursor) break;
    }
    expect(paged.map((j) => JSON.stringify(j))).toEqual(all.map((j) => JSON.stringify(j)));

    for (const [query, ids] of [
      ['status=PENDING', ['follows', 'held', 'waits']],
      ['status=RUNNING,SUCCEEDED&limit=3', ['retried', 'gpu', 'array']],
      ['label=team=vision', ['array', 'labelled']],
      ['label=team=vision&label=job_name', ['labelled']],
      ['name=sweep', ['labelled']],
      [`since=${byId.get('plain')?.start_time ?? 0}`, ['follows', 'held', 'waits', 'retried', 'gpu', 'array', 'labelled', 'plain']],
      [`since=${Date.now() + 3_600_000}`, []],
    ] as const) {
      const res = await call(head, 'GET', `/api/jobs/?${query}`);
      const jobs = res.json as unknown as JobDetails[];
      expect(jobs.map((j) => j.submission_id), query).toEqual(ids);
      for (const j of jobs) expect(JSON.stringify(j), `${query}: ${j.submission_id}`).toBe(own(j));
    }
  });

  it('reads a page with the indexes: the newest jobs, a status, a label, each page after a cursor', async () => {
    const head = await inProcessHead();
    const plan = (q: Parameters<typeof jobPageSql>[0]): string => {
      const { sql, params } = jobPageSql(q);
      return (head.store.db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...params) as { detail: string }[]).map((r) => r.detail).join('\n');
    };
    for (const q of [{ limit: 101 }, { limit: 101, beforeSeq: 5000 }, { limit: 101, statuses: ['SUCCEEDED' as const] }, { limit: 101, labels: [{ key: 'team', value: 'a' }] }]) {
      const p = plan(q);
      // Tasks and attempts by their primary keys (job id first), nodes by id; never a scan of them.
      expect(p, JSON.stringify(q)).toMatch(/SEARCH tasks USING PRIMARY KEY \(job_id=\?\)/);
      expect(p, JSON.stringify(q)).toMatch(/SEARCH a USING PRIMARY KEY \(job_id=\?\)/); // attempts AS a
      expect(p, JSON.stringify(q)).toMatch(/SEARCH n USING INDEX sqlite_autoindex_nodes_1 \(id=\?\)/); // nodes AS n
      expect(p, JSON.stringify(q)).not.toMatch(/SCAN (tasks|attempts|a|nodes|n|job_labels|l)\b/);
    }
    expect(plan({ limit: 101, statuses: ['SUCCEEDED'] })).toMatch(/jobs_by_status/);
    expect(plan({ limit: 101, labels: [{ key: 'team', value: 'a' }] })).toMatch(/job_labels_by_value/);
    expect(plan({ limit: 101, beforeSeq: 5000 })).toMatch(/INTEGER PRIMARY KEY \(rowid<\?\)/);
  });
});
