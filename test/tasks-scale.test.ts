/**
 * One driver submits 5,000 in-job tasks at once, on a head with its embedded agent (where an agent
 * that fails takes the head down with it): they all finish, the head and agent stay alive and
 * serving, and 0-CPU tasks run on a few workers, not one process each.
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { isAlive, repoRoot, runCli, startHead } from './helpers/cluster.js';

const FIXTURE = path.join(repoRoot, 'test', 'fixtures', 'scale');

describe('5,000 tasks from one driver', () => {
  it('finish, 1-CPU and 0-CPU alike, with the head and its agent alive', async () => {
    const head = await startHead({ numCpus: 2, args: ['--heartbeat-ms', '200'] });
    for (const cpus of ['1', '0']) {
      const res = await runCli(['job', 'submit', '--submission-id', `many-${cpus}`, '--working-dir', FIXTURE, '--entrypoint-num-cpus', '0', '--', 'python3', 'many.py', cpus], { env: head.env, timeoutMs: 400_000 });
      expect(res.code, res.stdout + res.stderr).toBe(0);
      const line = /\{"check": "many".*\}/.exec(res.stdout)?.[0] ?? '{}';
      const out = JSON.parse(line) as { ok?: boolean; seconds?: number; workers?: number };
      console.log(`5,000 tasks of ${cpus} CPU: ${out.seconds ?? '?'} s on ${out.workers ?? '?'} workers`);
      expect(out.ok).toBe(true);
      // As many workers as the node has CPUs for 1-CPU tasks; for 0-CPU ones, the soft limit (twice the CPUs, at least 4).
      expect(out.workers).toBeGreaterThanOrEqual(1);
      expect(out.workers).toBeLessThanOrEqual(cpus === '1' ? 2 : 4);
      const job = await head.client.getJob(`many-${cpus}`);
      expect(job.raysub.injob?.finished).toBe(5000);
    }
    expect(isAlive(head.pid)).toBe(true);
    const nodes = await head.client.nodes();
    expect(nodes.map((n) => n.state)).toEqual(['ALIVE']);
    expect(nodes[0]?.free.num_cpus).toBe(2);
    expect((await head.client.version()).raysub?.version).toBeTruthy();
  }, 900_000);
});
