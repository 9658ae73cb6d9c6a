/**
 * The Node in-job library end to end: a head, two agents, a Node job whose remote functions and
 * actor class are exported from a module (test/fixtures/tasks-node).
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot, runCli, startAgent, startHead } from './helpers/cluster.js';

const FIXTURES = path.join(repoRoot, 'test', 'fixtures', 'tasks-node');

describe('in-job tasks for Node jobs', () => {
  it('runs remote functions, nested tasks, large objects between nodes, errors, actors (handles passed to tasks and actors) and wait', async () => {
    const head = await startHead({ localAgent: false, args: ['--heartbeat-ms', '200'] });
    await startAgent(head, { name: 'a', numCpus: 2, resources: { node_a: 10 } });
    await startAgent(head, { name: 'b', numCpus: 2, resources: { node_b: 10 } });
    const nodes = await head.client.nodes();
    const id = (name: string): string => nodes.find((n) => n.node_name === name)?.node_id ?? '';
    const res = await runCli(['job', 'submit', '--working-dir', FIXTURES, '--entrypoint-num-cpus', '0', '--entrypoint-resources', '{"node_a": 1}', '--', 'node', 'main.mjs'], {
      env: head.env,
      timeoutMs: 120_000,
    });
    expect(res.code, res.stdout + res.stderr).toBe(0);
    const out = JSON.parse(/\{"squares".*\}/.exec(res.stdout)?.[0] ?? '{}') as Record<string, unknown>;
    expect(out.squares).toEqual([1, 4, 9, 16]);
    expect(out.nodes).toEqual([id('a'), id('b')].sort());
    expect(out.parallelMs).toBeLessThan(2000);
    expect(out.nested).toBe(0 + 1 + 4 + 9);
    expect(out.big).toEqual({ madeOn: id('b'), sum: 7 * 20 * 1024 * 1024, node: id('a') });
    const error = out.error as { name: string; message: string };
    expect(error.name).toBe('TaskError');
    expect(error.message).toMatch(/task fails failed: RangeError: out of range here/);
    expect(error.message).toMatch(/at fails \(file:\/\/.*lib\.mjs:\d+:\d+\)/);
    expect(out.counter).toEqual([11, 13, 16, 20]);
    // The counter's handle, passed to a task on the other node, inside a value to another actor,
    // and returned from it: each call reaches the one counter.
    expect(out.handles).toEqual([120, 1120, 11120]);
    expect(out.dead).toBe('ActorDiedError');
    expect(out.wait).toEqual([1, 1]);
  }, 150_000);
});
