/**
 * A hostile job against the Ray core parts of the in-job API: hand-written requests, releases,
 * cancellations, yields and multi-return results (test/fixtures/hostile/raycore.py), placement
 * groups no node can hold or that do not exist, and an actor that dies at once with endless
 * restarts. Each gets a clear answer or error; the agent keeps serving the job and the next one.
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkLines as checks } from './helpers/checks.js';
import { repoRoot, runCli, startAgent, startHead } from './helpers/cluster.js';

const FIXTURES = path.join(repoRoot, 'test', 'fixtures', 'hostile');

async function run(mode: string): Promise<{ c: Map<string, Record<string, unknown>>; head: Awaited<ReturnType<typeof startHead>> }> {
  const head = await startHead({ localAgent: false, args: ['--heartbeat-ms', '200'] });
  await startAgent(head, { name: 'a', numCpus: 2 });
  const res = await runCli(['job', 'submit', '--working-dir', FIXTURES, '--entrypoint-num-cpus', '0', '--', 'python3', 'raycore.py', mode], { env: head.env, timeoutMs: 120_000 });
  expect(res.code, res.stdout + res.stderr).toBe(0);
  return { c: checks(res.stdout), head };
}

describe('hostile Ray core traffic', () => {
  it('answers malformed requests, yields, returns and placements with their error code; unknown releases, cancels and kills are no-ops', async () => {
    const { c, head } = await run('frames');
    expect(c.get('frames')?.answers).toEqual({
      'unknown-op': 'INVALID_MESSAGE',
      'handle-too-large': 'INVALID_MESSAGE',
      'declared-len-wrong': 'INVALID_MESSAGE',
      'name-without-handle': [false, 'ValueError'],
      '1001-bundles': 'INVALID_MESSAGE',
      'bad-strategy': 'INVALID_MESSAGE',
      'returns-id-too-long': 'INVALID_MESSAGE',
      'yield-from-a-driver': 'UNAUTHORIZED',
      'returns-not-adding-up': 'INVALID_MESSAGE',
      'bad-placement-bundle': 'INVALID_MESSAGE',
    });
    expect(c.get('frames')?.quiet).toBe(true);
    expect((await head.client.nodes())[0]?.state).toBe('ALIVE');
  }, 150_000);

  it('a placement group no node can hold stays pending without blocking the job; a task in a group that does not exist fails', async () => {
    const { c, head } = await run('groups');
    expect(c.get('groups')).toMatchObject({ never_ready: true, state: 'PENDING', lost: 'TaskPlacementGroupRemoved', served: 49 });
    // The pending group held nothing: the node is whole and runs the next job at once.
    expect((await head.client.nodes())[0]?.free.num_cpus).toBe(2);
    await head.client.submitJob({ submission_id: 'after', entrypoint: 'true', entrypoint_num_cpus: 2 });
    expect((await head.client.waitForJob('after', { timeoutMs: 60_000 })).status).toBe('SUCCEEDED');
  }, 150_000);

  it('an actor whose process dies at once, with endless restarts, is restarted at most once a second until killed', async () => {
    const { c, head } = await run('restarts');
    const r = c.get('restarts');
    console.log(`an actor dying at once started for the fourth time ${String(r?.fourth_after)} s after it was made`);
    expect(r?.dead).toBe('ActorDiedError');
    expect(r?.starts).toBeGreaterThanOrEqual(4);
    // Each restart waits a second after the start before it: three restarts take three seconds at least
    // (a loaded machine only makes it longer; unspaced, four starts take well under a second).
    expect(r?.fourth_after).toBeGreaterThanOrEqual(3);
    expect((await head.client.nodes())[0]?.state).toBe('ALIVE');
  }, 150_000);
});
