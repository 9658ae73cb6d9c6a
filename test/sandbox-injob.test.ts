/**
 * A job's sandbox requirement holds for its in-job tasks as for its own: a real head, one agent
 * that sandboxes with bubblewrap and one started with `--sandbox process`. A job requiring bwrap
 * cannot have an in-job task run on the weaker node (it fails with Ray's TaskUnschedulableError
 * naming the sandbox), and its other tasks run on the bwrap node. The agent's own check (a worker
 * it is asked to start for a job requiring more than it provides is refused) is the same function
 * for both kinds of worker: checkSandbox, table-tested here.
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkSandbox, SetupError } from '../src/agent/prepareWorker.js';
import { repoRoot, runCli, startAgent, startHead } from './helpers/cluster.js';
import { requireSandbox, unique } from './helpers/sandbox.js';

const FIXTURES = path.join(repoRoot, 'test', 'fixtures', 'sandbox-injob');

describe('a job requiring bwrap', () => {
  it('checks what a node provides against what a job requires, for every worker', () => {
    const rows: [string | undefined, 'none' | 'process' | 'bwrap', boolean][] = [
      [undefined, 'none', true],
      ['process', 'process', true],
      ['process', 'bwrap', true],
      ['bwrap', 'bwrap', true],
      ['bwrap', 'process', false],
      ['bwrap', 'none', false],
      ['process', 'none', false],
    ];
    for (const [require, mode, ok] of rows) {
      const run = (): void => checkSandbox({ sandbox: require ? { require: require as 'bwrap' } : {} }, { mode, detail: 'test' }, 'n1');
      if (ok) expect(run, `${require} on ${mode}`).not.toThrow();
      else {
        expect(run, `${require} on ${mode}`).toThrow(SetupError);
        expect(run).toThrow(`job requires a "${require}" sandbox; node n1 provides "${mode}"`);
      }
    }
  });

  it('never runs its in-job tasks on a --sandbox process node', async (ctx) => {
    const head = await startHead({ localAgent: false, args: ['--heartbeat-ms', '200', '--lease-ms', '3000'] });
    const strong = unique('strong');
    await startAgent(head, { name: strong, numCpus: 2, resources: { strong: 10 } });
    await requireSandbox(head, ctx, strong);
    const weak = unique('weak');
    await startAgent(head, { name: weak, numCpus: 2, resources: { weak: 10 }, args: ['--sandbox', 'process'] });
    const nodes = await head.client.nodes();
    const idOf = (name: string): string | undefined => nodes.find((n) => n.node_name === name)?.node_id;
    expect(nodes.find((n) => n.node_name === weak)?.sandbox.mode).toBe('process');

    const res = await runCli(
      ['job', 'submit', '--working-dir', FIXTURES, '--entrypoint-num-cpus', '0', '--runtime-env-json', '{"sandbox": {"require": "bwrap"}}', '--', 'python3', 'driver.py'],
      { env: head.env, timeoutMs: 240_000 },
    );
    expect(res.code, res.stdout + res.stderr).toBe(0);
    const lines = res.stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, string>);
    const weakLine = lines.find((l) => 'weak' in l);
    expect(weakLine?.weak, JSON.stringify(weakLine)).toBe('TaskUnschedulableError');
    expect(weakLine?.message).toMatch(/"bwrap" sandbox/);
    expect(lines.find((l) => 'anywhere' in l)?.anywhere).toBe(idOf(strong));
  }, 300_000);
});
