/**
 * Finding and holding jobs, end to end: labels, names and submission times on the REST list (in an
 * in-process head) and through the CLI against a real head; `job hold` / `job release` with a
 * real agent running the released job.
 */
import { describe, expect, it } from 'vitest';
import type { JobDetails } from '../src/shared/protocol/index.js';
import { runCli, startHead, waitFor } from './helpers/cluster.js';
import { call, inProcessHead } from './helpers/head.js';

const ids = (jobs: unknown): string[] => (jobs as JobDetails[]).map((j) => j.submission_id);

describe('finding jobs by label, name and time', () => {
  it('the REST list filters by every label given, by name and by submission time, and pages', async () => {
    const head = await inProcessHead();
    const submit = async (id: string, metadata: Record<string, string>) => {
      const r = await call(head, 'POST', '/api/jobs/', { entrypoint: 'true', submission_id: id, metadata });
      expect(r.status, JSON.stringify(r.json)).toBe(200);
    };
    await submit('v1', { team: 'vision', stage: 'train' });
    await submit('v2', { team: 'vision', stage: 'eval', job_name: 'nightly' });
    await submit('n1', { team: 'nlp', stage: 'train', job_name: 'nightly' });
    const since = Date.now() + 1;
    await expect.poll(() => Date.now()).toBeGreaterThan(since);
    await submit('v3', { team: 'vision' });
    const list = async (q: string) => {
      const r = await call(head, 'GET', `/api/jobs/?${q}`);
      expect(r.status, JSON.stringify(r.json)).toBe(200);
      return ids(r.json);
    };
    expect(await list('label=team=vision')).toEqual(['v3', 'v2', 'v1']);
    expect(await list('label=team=vision&label=stage=train')).toEqual(['v1']);
    expect(await list('label=team=vision&label=stage')).toEqual(['v2', 'v1']);
    expect(await list('name=nightly')).toEqual(['n1', 'v2']);
    expect(await list('name=nightly&label=team=vision')).toEqual(['v2']);
    expect(await list(`since=${since}`)).toEqual(['v3']);
    expect(await list(`label=team=vision&since=${since}`)).toEqual(['v3']);
    expect(await list('label=team=robotics')).toEqual([]);
    // Pages walk the label's index: two, then the rest.
    const first = await head.app.inject({ method: 'GET', url: '/api/jobs/?label=team=vision&limit=2', headers: { authorization: `Bearer ${head.token}` } });
    expect(ids(JSON.parse(first.body))).toEqual(['v3', 'v2']);
    const cursor = first.headers['x-next-cursor'];
    expect(typeof cursor).toBe('string');
    expect(await list(`label=team=vision&limit=2&cursor=${String(cursor)}`)).toEqual(['v1']);
    // Bad filters are the client's mistake: a clear 400, and the server keeps serving.
    for (const q of ['label=', 'label==x', 'since=yesterday', 'since=-1', 'name=', Array.from({ length: 17 }, () => 'label=a').join('&')]) {
      const r = await call(head, 'GET', `/api/jobs/?${q}`);
      expect(r.status, q).toBe(400);
      expect(r.json.error?.code, q).toBe('INVALID_REQUEST');
    }
    expect(await list('label=team=vision&limit=1')).toEqual(['v3']);
  });

  it('hold and release over REST: only a pending job, unknown jobs are 404', async () => {
    const head = await inProcessHead();
    expect((await call(head, 'POST', '/api/jobs/', { entrypoint: 'true', submission_id: 'h', raysub: { hold: true } })).status).toBe(200);
    let job = (await call(head, 'GET', '/api/jobs/h')).json as unknown as JobDetails;
    expect(job.raysub.held).toBe(true);
    expect(await call(head, 'POST', '/api/jobs/h/release')).toMatchObject({ status: 200, json: { held: false } });
    expect(await call(head, 'POST', '/api/jobs/h/release')).toMatchObject({ status: 200, json: { held: false } });
    expect(await call(head, 'POST', '/api/jobs/h/hold')).toMatchObject({ status: 200, json: { held: true } });
    job = (await call(head, 'GET', '/api/jobs/h')).json as unknown as JobDetails;
    expect(job.raysub.held).toBe(true);
    expect((await call(head, 'POST', '/api/jobs/nope/hold')).json.error?.code).toBe('JOB_NOT_FOUND');
    expect((await call(head, 'POST', '/api/jobs/h/stop')).status).toBe(200);
    const r = await call(head, 'POST', '/api/jobs/h/release');
    expect(r.status).toBe(409);
    expect(r.json.error).toMatchObject({ code: 'JOB_NOT_PENDING', message: expect.stringMatching(/STOPPED|not pending/) });
  });

  it('`job list --label team=vision` lists only those jobs; --name and --since too; `job hold` keeps a job from starting until `job release`', async () => {
    const head = await startHead({ numCpus: 2 });
    const submit = async (...args: string[]) => {
      const r = await runCli(['job', 'submit', '--no-wait', '--entrypoint-num-cpus', '0', ...args], { env: head.env });
      expect(r.code, r.stderr).toBe(0);
      return r.stdout.trim();
    };
    const held = await submit('--hold', '--label', 'team=vision', '--name', 'resnet', '--', 'echo', 'held-ran');
    await submit('--submission-id', 'vision-2', '--label', 'team=vision', '--label', 'stage=eval', '--', 'true');
    await submit('--submission-id', 'nlp-1', '--label', 'team=nlp', '--name', 'resnet', '--', 'true');
    const listed = await runCli(['job', 'list', '--label', 'team=vision', '--json'], { env: head.env });
    expect(listed.code, listed.stderr).toBe(0);
    expect(ids((JSON.parse(listed.stdout) as { jobs: unknown }).jobs).sort()).toEqual([held, 'vision-2'].sort());
    const table = await runCli(['job', 'list', '--label', 'team=vision'], { env: head.env });
    expect(table.stdout).toContain(held);
    expect(table.stdout).toContain('vision-2');
    expect(table.stdout).not.toContain('nlp-1');
    expect(table.stdout).toMatch(/NAME/);
    const byName = await runCli(['job', 'list', '--name', 'resnet', '--json'], { env: head.env });
    expect(ids((JSON.parse(byName.stdout) as { jobs: unknown }).jobs).sort()).toEqual([held, 'nlp-1'].sort());
    const both = await runCli(['job', 'list', '--label', 'team=vision', '--label', 'stage=eval', '--since', '1h', '--json'], { env: head.env });
    expect(ids((JSON.parse(both.stdout) as { jobs: unknown }).jobs)).toEqual(['vision-2']);
    const future = await runCli(['job', 'list', '--since', '2999-01-01', '--json'], { env: head.env });
    expect((JSON.parse(future.stdout) as { jobs: unknown[] }).jobs).toEqual([]);
    const bad = await runCli(['job', 'submit', '--no-wait', '--label', 'novalue', '--', 'true'], { env: head.env });
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/--label must be key=value/);

    // The held job waits, saying why, while the others have run.
    await waitFor(async () => (await head.client.getJob('vision-2')).status === 'SUCCEEDED', { what: 'vision-2 to finish' });
    const status = await runCli(['job', 'status', held], { env: head.env });
    expect(status.stdout).toMatch(/Status\s+PENDING/);
    expect(status.stdout).toMatch(/Held\s+yes/);
    expect(status.stdout).toMatch(/Name\s+resnet/);
    expect(status.stdout).toMatch(/Labels\s+team=vision/);
    expect(status.stdout).toMatch(/Queue\s+position \d+: held/);
    const released = await runCli(['job', 'release', held], { env: head.env });
    expect(released.code, released.stderr).toBe(0);
    await waitFor(async () => (await head.client.getJob(held)).status === 'SUCCEEDED', { what: 'the released job to finish' });
    const again = await runCli(['job', 'hold', held], { env: head.env });
    expect(again.code).not.toBe(0);
    expect(again.stderr).toMatch(/only a pending job can be held/);
  });
});

describe('jobs that run after others', () => {
  it('`--after A` waits PENDING with the reason while A runs, starts after A SUCCEEDED; after a FAILED A it ends FAILED with DEPENDENCY_FAILED without running', async () => {
    const head = await startHead({ numCpus: 2 });
    const submit = async (...args: string[]) => {
      const r = await runCli(['job', 'submit', '--no-wait', '--entrypoint-num-cpus', '0', ...args], { env: head.env });
      expect(r.code, r.stderr).toBe(0);
      return r.stdout.trim();
    };
    await submit('--submission-id', 'dep-a', '--', 'sleep', '6');
    await submit('--submission-id', 'dep-b', '--after', 'dep-a', '--', 'echo', 'b-ran');
    await waitFor(async () => (await head.client.getJob('dep-a')).status === 'RUNNING', { what: 'A to run' });
    const waiting = await head.client.getJob('dep-b');
    expect(waiting.status).toBe('PENDING');
    expect(waiting.raysub.queue?.reason).toBe('waiting for dep-a to succeed (RUNNING)');
    expect(waiting.raysub.after).toEqual(['dep-a']);
    const b = await head.client.waitForJob('dep-b');
    const a = await head.client.getJob('dep-a');
    expect(a.status).toBe('SUCCEEDED');
    expect(b.status).toBe('SUCCEEDED');
    expect(b.raysub.started_at).toBeGreaterThanOrEqual(a.end_time ?? Infinity);

    await submit('--submission-id', 'dep-f', '--', 'sh', '-c', 'sleep 1; exit 3');
    await submit('--submission-id', 'dep-g', '--after', 'dep-f', '--after-any', 'dep-a', '--', 'echo', 'g-ran');
    const g = await head.client.waitForJob('dep-g');
    expect(g.status).toBe('FAILED');
    expect(g.raysub.error_type).toBe('DEPENDENCY_FAILED');
    expect(g.raysub.message).toMatch(/job dep-f, which it runs after, ended FAILED/);
    expect(g.raysub.started_at).toBeNull();
    const gs = await head.client.getJob('dep-g');
    expect(gs.raysub.tasks?.[0]?.attempts).toEqual([]);
    const logs = await runCli(['job', 'logs', 'dep-g'], { env: head.env });
    expect(logs.stdout + logs.stderr).not.toContain('g-ran');
    // The CLI shows what a job waits for (on a held job here, so nothing moves meanwhile); a stopped dependency fails it too.
    await submit('--submission-id', 'dep-h', '--hold', '--', 'true');
    await submit('--submission-id', 'dep-w', '--after', 'dep-h', '--', 'true');
    const shown = await runCli(['job', 'status', 'dep-w'], { env: head.env });
    expect(shown.stdout).toMatch(/After\s+dep-h \(succeeded\)/);
    expect(shown.stdout).toMatch(/Queue\s+position \d+: waiting for dep-h to succeed \(PENDING\)/);
    await head.client.stopJob('dep-h');
    expect((await head.client.waitForJob('dep-w')).raysub).toMatchObject({ error_type: 'DEPENDENCY_FAILED', message: expect.stringMatching(/dep-h, which it runs after, ended STOPPED/) });
    // Waiting on what does not exist, or on itself, is refused at submission.
    for (const args of [['--after', 'no-such-job'], ['--submission-id', 'loop', '--after', 'loop']]) {
      const r = await runCli(['job', 'submit', '--no-wait', ...args, '--', 'true'], { env: head.env });
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/does not exist|cannot run after itself/);
    }
  });
});

/** The most tasks that ran at the same moment, from their start and end times. */
function maxOverlap(spans: { start: number; end: number }[]): number {
  const edges = spans.flatMap((s) => [[s.start, 1] as const, [s.end, -1] as const]).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let now = 0;
  let most = 0;
  for (const [, d] of edges) most = Math.max(most, (now += d));
  return most;
}

describe('array throttles and index lists', () => {
  it('`--parallel 6 --max-concurrent 2`: never more than 2 tasks at once (start and end times); `--array 0-10:5%1` runs indices 0, 5, 10 one at a time', async () => {
    const head = await startHead({ numCpus: 4 });
    const submit = async (...args: string[]) => {
      const r = await runCli(['job', 'submit', '--no-wait', '--entrypoint-num-cpus', '0', ...args], { env: head.env });
      expect(r.code, r.stderr).toBe(0);
      return r.stdout.trim();
    };
    await submit('--submission-id', 'throttled', '--parallel', '6', '--max-concurrent', '2', '--', 'sleep', '1');
    const running = await waitFor(async () => {
      const j = await head.client.getJob('throttled');
      return j.status === 'RUNNING' && j.raysub.message?.includes('throttled') ? j : null;
    }, { what: 'the array to run, its other tasks throttled' });
    expect(running.raysub.message).toMatch(/its other tasks wait: throttled \(2 running\)/);
    expect(running.raysub.max_concurrent).toBe(2);
    const done = await head.client.waitForJob('throttled');
    expect(done.status).toBe('SUCCEEDED');
    const tasks = (await head.client.getJob('throttled')).raysub.tasks ?? [];
    expect(tasks).toHaveLength(6);
    const spans = tasks.map((t) => ({ start: t.started_at ?? NaN, end: t.ended_at ?? NaN }));
    for (const s of spans) expect(s.end).toBeGreaterThanOrEqual(s.start);
    expect(maxOverlap(spans)).toBeLessThanOrEqual(2);

    await submit('--submission-id', 'subset', '--array', '0-10:5%1', '--', 'sh', '-c', 'echo "index=$RAYSUB_ARRAY_INDEX task=$RAYSUB_TASK_INDEX of $RAYSUB_TASK_COUNT"');
    const subset = await head.client.waitForJob('subset');
    expect(subset.status).toBe('SUCCEEDED');
    expect(subset.raysub).toMatchObject({ parallel: 3, max_concurrent: 1, array: '0-10:5%1' });
    const full = await head.client.getJob('subset');
    expect(full.raysub.tasks?.map((t) => t.array_index)).toEqual([0, 5, 10]);
    expect(maxOverlap((full.raysub.tasks ?? []).map((t) => ({ start: t.started_at ?? NaN, end: t.ended_at ?? NaN })))).toBe(1);
    const logs = await runCli(['job', 'logs', 'subset'], { env: head.env });
    for (const [i, idx] of [0, 5, 10].entries()) expect(logs.stdout).toContain(`index=${idx} task=${i} of 3`);
    const status = await runCli(['job', 'status', 'subset'], { env: head.env });
    expect(status.stdout).toMatch(/Array\s+indices 0-10:5%1 \(3 tasks\), at most 1 at once/);
    for (const bad of [['--array', '9-1'], ['--array', '0-3', '--parallel', '2']]) {
      const r = await runCli(['job', 'submit', '--no-wait', ...bad, '--', 'true'], { env: head.env });
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/runs backwards|disagree/);
    }
  });
});
