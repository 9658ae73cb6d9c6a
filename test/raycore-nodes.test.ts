/**
 * Ray's core API across nodes: a real head and two agents (2 CPUs each), a Python job whose driver
 * runs on one of them (test/fixtures/tasks/raycore_nodes.py). Values made on the other node reach
 * their owner as they are made, names and placement groups are job-wide, cancellations follow a
 * task to where the head placed it, and an actor on the other node is freed when its last handle
 * goes; both ledgers still add up afterwards.
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkLines as checks } from './helpers/checks.js';
import { repoRoot, runCli, startAgent, startHead } from './helpers/cluster.js';

const FIXTURES = path.join(repoRoot, 'test', 'fixtures', 'tasks');

describe("Ray's core API across two nodes", () => {
  it('streams, names, cancels, places groups by strategy and frees actors across nodes', async () => {
    const head = await startHead({ localAgent: false, args: ['--heartbeat-ms', '200', '--lease-ms', '3000'] });
    const a = await startAgent(head, { name: 'a', numCpus: 2, resources: { node_a: 10 } });
    const b = await startAgent(head, { name: 'b', numCpus: 2, resources: { node_b: 10 } });
    const res = await runCli(
      ['job', 'submit', '--working-dir', FIXTURES, '--entrypoint-num-cpus', '0', '--entrypoint-resources', '{"node_a": 1}', '--', 'python3', 'raycore_nodes.py'],
      { env: head.env, timeoutMs: 240_000 },
    );
    expect(res.code, res.stdout + res.stderr).toBe(0);
    expect(res.stdout).toMatch(/^done$/m);
    const c = checks(res.stdout);
    expect(c.get('remote_results')).toMatchObject({ streamed: [0, 1, 2], far: true, x: 'x' });
    expect(c.get('named_remote')).toMatchObject({ found_far: true });
    expect(c.get('cancel_remote')).toMatchObject({ running: 'RayTaskError(TaskCancelledError)', forced: 'TaskCancelledError', quickly: true });
    expect(c.get('placement')).toMatchObject({ spread_apart: true, spread_where_table_says: true, packed_together: true, too_big_pending: true, state: 'CREATED' });
    expect(c.get('release_remote')).toMatchObject({ swept: [0, 1, 2] });
    expect(c.get('cluster')).toMatchObject({ cpus: 4, nodes: 2, custom: ['node_a', 'node_b'] });
    // Every holding came back: neither the agents nor the head saw their books not add up.
    for (const p of [head, a, b]) expect(p.output()).not.toMatch(/invariant broken/);
  }, 300_000);
});
