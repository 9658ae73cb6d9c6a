/**
 * `raysub job logs` as an operator reads a log: one ordered stream on stdout, the last lines,
 * lines since a time, capture times, one task of an array; `submit --json` keeps stdout for its
 * result. A real head with its local agent and real python3 workers.
 */
import { describe, expect, it } from 'vitest';
import { runCli, startHead, workingDir } from './helpers/cluster.js';

const ISO = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z) (.*)$/;

const ALTERNATE = `import sys, time
for i in range(3):
    print(f"out {i}", flush=True)
    print(f"err {i}", file=sys.stderr, flush=True)
    time.sleep(0.3)
`;

describe('job logs', () => {
  it('prints interleaved stdout and stderr in order on stdout; --tail, --since, --timestamps, --task', async () => {
    const head = await startHead({ numCpus: 2 });
    const dir = workingDir({ 'alt.py': ALTERNATE, 'task.py': 'import os\nprint("task", os.environ["RAYSUB_TASK_INDEX"])\nprint("done", os.environ["RAYSUB_TASK_INDEX"])\n' });
    const before = Date.now();
    const sub = await runCli(['job', 'submit', '--working-dir', dir, '--submission-id', 'alt', '-q', '--', 'python3', 'alt.py'], { env: head.env });
    expect(sub.code).toBe(0);
    const after = Date.now();
    const expected = ['out 0', 'err 0', 'out 1', 'err 1', 'out 2', 'err 2'];

    const all = await runCli(['job', 'logs', 'alt'], { env: head.env });
    expect(all.code).toBe(0);
    expect(all.stdout).toBe(expected.map((l) => `${l}\n`).join(''));
    expect(all.stderr).toBe('');

    const tail = await runCli(['job', 'logs', 'alt', '--tail', '2'], { env: head.env });
    expect(tail).toMatchObject({ code: 0, stdout: 'out 2\nerr 2\n' });

    const stamped = await runCli(['job', 'logs', 'alt', '--timestamps'], { env: head.env });
    expect(stamped.code).toBe(0);
    const rows = stamped.stdout.trimEnd().split('\n').map((l) => ISO.exec(l));
    expect(rows.map((m) => m?.[2])).toEqual(expected);
    const times = rows.map((m) => Date.parse(m?.[1] ?? ''));
    for (const t of times) {
      expect(t).toBeGreaterThanOrEqual(before - 1000);
      expect(t).toBeLessThanOrEqual(after + 1000);
    }
    // Captured as written: in order, and the job's 0.3 s sleeps between the pairs show.
    expect([...times].sort((a, b) => a - b)).toEqual(times);
    expect((times[2] ?? 0) - (times[0] ?? 0)).toBeGreaterThanOrEqual(200);
    expect((times[4] ?? 0) - (times[2] ?? 0)).toBeGreaterThanOrEqual(200);

    // --since a time: what was captured from the third pair on; with a duration: everything.
    const third = new Date(times[4] ?? 0).toISOString();
    const since = await runCli(['job', 'logs', 'alt', '--since', third], { env: head.env });
    expect(since).toMatchObject({ code: 0, stdout: 'out 2\nerr 2\n' });
    expect((await runCli(['job', 'logs', 'alt', '--since', '1h'], { env: head.env })).stdout).toBe(all.stdout);
    expect((await runCli(['job', 'logs', 'alt', '--since', new Date(Date.now() + 60_000).toISOString()], { env: head.env })).stdout).toBe('');

    // NDJSON carries the capture time in ms.
    const json = await runCli(['job', 'logs', 'alt', '--json', '--timestamps', '--tail', '1'], { env: head.env });
    expect(json.stdout.trimEnd().split('\n').map((l) => JSON.parse(l) as unknown)).toEqual([{ task: 0, stream: 'stdout', data: 'err 2\n', time: times[5] }]);

    const arr = await runCli(['job', 'submit', '--working-dir', dir, '--submission-id', 'arr', '--parallel', '3', '-q', '--', 'python3', 'task.py'], { env: head.env });
    expect(arr.code).toBe(0);
    const one = await runCli(['job', 'logs', 'arr', '--task', '1'], { env: head.env });
    expect(one).toMatchObject({ code: 0, stdout: 'task 1\ndone 1\n' });
    const lastOfEach = await runCli(['job', 'logs', 'arr', '--tail', '1'], { env: head.env });
    expect(lastOfEach.stdout.trimEnd().split('\n').sort()).toEqual(['[task 0] done 0', '[task 1] done 1', '[task 2] done 2']);
    const stampedTask = await runCli(['job', 'logs', 'arr', '--task', '2', '--timestamps', '--tail', '1'], { env: head.env });
    expect(stampedTask.stdout).toMatch(/^\d{4}-\d{2}-\d{2}T[\d:.]+Z done 2\n$/);

    const badTask = await runCli(['job', 'logs', 'arr', '--task', '3'], { env: head.env });
    expect(badTask.code).toBe(64);
    expect(badTask.stderr).toMatch(/--task 3: job 'arr' has 3 tasks \(0-2\)/);
    for (const bad of [['--tail', '-1'], ['--tail', 'x'], ['--since', 'yesterday'], ['--task', '1.5']]) {
      const r = await runCli(['job', 'logs', 'arr', ...bad], { env: head.env });
      expect(r.code, bad.join(' ')).toBe(64);
      expect(r.stderr).toContain(bad[0]);
    }
  });

  it('submit --json streams the job output to stderr and prints only the JSON result on stdout', async () => {
    const head = await startHead({ numCpus: 1 });
    const dir = workingDir({ 'alt.py': ALTERNATE });
    const r = await runCli(['job', 'submit', '--working-dir', dir, '--submission-id', 'sj', '--json', '--', 'python3', 'alt.py'], { env: head.env });
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ submission_id: 'sj', status: 'SUCCEEDED' });
    expect(r.stderr).toContain('out 0\nerr 0\nout 1\nerr 1\nout 2\nerr 2\n');
  });
});
