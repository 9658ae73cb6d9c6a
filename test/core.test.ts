import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { processesWith, runCli, spawnCli, startHead, waitFor, workingDir } from './helpers/cluster.js';

const PY_JOB = `
import os, sys, time
print("hello from python", os.environ["RAYSUB_JOB_ID"], os.environ["RAYSUB_TASK_INDEX"], os.environ["PYTHONUNBUFFERED"])
print("a warning", file=sys.stderr)
sys.exit(int(os.environ.get("EXIT_CODE", "0")))
`;

const NODE_JOB = `
const fs = require('node:fs');
console.log('hello from node', process.env.RAYSUB_JOB_ID, fs.readFileSync('data.txt', 'utf8').trim());
`;

describe('core job lifecycle through the CLI', () => {
  it('runs Python and Node jobs, returns exit codes, dedups packages, lists and deletes', async () => {
    const head = await startHead({ numCpus: 2 });
    const dir = workingDir({ 'main.py': PY_JOB, 'index.js': NODE_JOB, 'data.txt': 'payload-42\n', '.gitignore': 'secret.txt\n', 'secret.txt': 'x' });

    const ok = await runCli(['job', 'submit', '--working-dir', dir, '--submission-id', 'py-ok', '--', 'python3', 'main.py'], { env: head.env });
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain('hello from python py-ok 0 1\na warning\n');
    expect(ok.stderr).toMatch(/Uploaded working dir: 4 files/);

    // The unchanged directory is not uploaded again, and the head stores one package.
    const node = await runCli(['job', 'submit', '--working-dir', dir, '--', 'node', 'index.js'], { env: head.env });
    expect(node.code).toBe(0);
    expect(node.stdout).toContain('hello from node');
    expect(node.stdout).toContain('payload-42');
    expect(node.stderr).toContain('Working dir unchanged');
    const packages = fs.readdirSync(path.join(head.dataDir, 'packages')).filter((f) => f.endsWith('.tar.gz'));
    expect(packages).toHaveLength(1);

    const failed = await runCli(
      ['job', 'submit', '--working-dir', dir, '--submission-id', 'py-3', '--runtime-env-json', '{"env_vars": {"EXIT_CODE": "3"}}', '--', 'python3', 'main.py'],
      { env: head.env },
    );
    expect(failed.code).toBe(3);
    expect(failed.stderr).toContain('ENTRYPOINT_FAILED');
    const status = await runCli(['job', 'status', 'py-3', '--json'], { env: head.env });
    const job = JSON.parse(status.stdout) as { status: string; driver_exit_code: number; error_type: string; message: string; raysub: { message: string } };
    expect(job).toMatchObject({ status: 'FAILED', driver_exit_code: 3, error_type: 'JOB_ENTRYPOINT_COMMAND_ERROR', raysub: { error_type: 'ENTRYPOINT_FAILED' } });
    expect(job.message).toContain('hello from python');

    // `job wait` and `job logs --follow` exit with the job's code too.
    expect((await runCli(['job', 'wait', 'py-3'], { env: head.env })).code).toBe(3);
    const logs = await runCli(['job', 'logs', 'py-3', '--follow'], { env: head.env });
    expect(logs.code).toBe(3);
    expect(logs.stdout).toContain('hello from python py-3');

    const list = await runCli(['job', 'list', '--json'], { env: head.env });
    const listed = JSON.parse(list.stdout) as { jobs: { submission_id: string; status: string }[]; next_cursor: string | null };
    expect(listed.jobs.map((j) => j.submission_id)).toContain('py-ok');
    expect(listed.jobs).toHaveLength(3);
    const failedOnly = JSON.parse((await runCli(['job', 'list', '--status', 'failed', '--json'], { env: head.env })).stdout) as typeof listed;
    expect(failedOnly.jobs.map((j) => j.submission_id)).toEqual(['py-3']);
    const page1 = JSON.parse((await runCli(['job', 'list', '--limit', '2', '--json'], { env: head.env })).stdout) as typeof listed;
    expect(page1.jobs).toHaveLength(2);
    expect(page1.next_cursor).toBeTruthy();
    const page2 = JSON.parse((await runCli(['job', 'list', '--limit', '2', '--cursor', page1.next_cursor ?? '', '--json'], { env: head.env })).stdout) as typeof listed;
    expect(page2.jobs.map((j) => j.submission_id)).toEqual(['py-ok']);
    expect(page2.next_cursor).toBeNull();

    const del = await runCli(['job', 'delete', 'py-ok'], { env: head.env });
    expect(del.code).toBe(0);
    expect(fs.existsSync(path.join(head.dataDir, 'logs', 'py-ok'))).toBe(false);
    const gone = await runCli(['job', 'status', 'py-ok'], { env: head.env });
    expect(gone.code).toBe(65);
    expect(gone.stderr).toContain('Job py-ok does not exist');
  });

  it('stops a running job and its whole process tree, and follows logs live', async () => {
    const head = await startHead({ numCpus: 2 });
    const dir = workingDir({
      'tree.sh': 'sleep 3011 & echo child; sh -c "sleep 3012 & echo grandchild; wait" & i=0; while true; do echo "tick $i"; i=$((i+1)); sleep 0.2; done\n',
    });
    const follower = spawnCli(['job', 'submit', '--working-dir', dir, '--submission-id', 'tree', '--', 'sh', 'tree.sh'], { env: head.env });
    await waitFor(() => follower.output().includes('grandchild') && follower.output().includes('tick 2'), { what: 'the job to start its children and tick' });
    expect(processesWith('sleep 3011').length).toBeGreaterThan(0);
    expect(processesWith('sleep 3012').length).toBeGreaterThan(0);

    const stop = await runCli(['job', 'stop', 'tree'], { env: head.env });
    expect(stop.code).toBe(0);
    expect(stop.stderr).toContain('stopped');
    const result = await follower.result;
    expect(result.code).toBe(130);
    await waitFor(() => processesWith('sleep 301').length === 0, { what: 'the job\'s children to be gone', timeoutMs: 10_000 });
    const job = await head.client.getJob('tree');
    expect(job.status).toBe('STOPPED');
    expect(job.raysub.error_type).toBe('STOPPED_BY_USER');
    // Stopping a finished job is harmless.
    expect((await runCli(['job', 'stop', 'tree'], { env: head.env })).code).toBe(0);
  });

  it('stops a pending job at once', async () => {
    const head = await startHead({ numCpus: 1 });
    const blocker = await runCli(['job', 'submit', '--no-wait', '--submission-id', 'blocker', '--', 'sleep', '30'], { env: head.env });
    expect(blocker.code).toBe(0);
    await waitFor(async () => (await head.client.getJob('blocker')).status === 'RUNNING');
    await runCli(['job', 'submit', '--no-wait', '--submission-id', 'queued', '--', 'echo', 'never'], { env: head.env });
    const queued = await head.client.getJob('queued');
    expect(queued.status).toBe('PENDING');
    expect(queued.raysub.queue?.reason).toMatch(/needs 1 CPU.*largest free: 0/);
    const stop = await runCli(['job', 'stop', 'queued', '--json'], { env: head.env });
    expect(stop.code).toBe(0);
    expect(JSON.parse(stop.stdout)).toMatchObject({ status: 'STOPPED' });
    await head.client.stopJob('blocker');
  });
});
